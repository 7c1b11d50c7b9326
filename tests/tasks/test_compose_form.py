"""The mail form's compose side through Django's test client: preview, test send, CSV upload and review."""

import html
import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from subscriptions.tokens import sample_links, unsubscribe_links
from tasks.models import Delivery, Task
from tests.tasks.test_views import field_errors, form_data

pytestmark = pytest.mark.django_db

KOREAN_CSV = (
    "email,name,message\nkim@example.com,김민준,월요일에 봬요\nlee@example.com,이서연,\nKIM@example.com,,화요일\n"
)


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def csv_file(text, encoding="utf-8", name="people.csv"):
    return SimpleUploadedFile(name, text.encode(encoding), content_type="text/csv")


def srcdoc(page):
    match = re.search(r'<iframe id="preview-html"[^>]* sandbox=""[^>]* srcdoc="([^"]*)"', page)
    assert match, "no sandboxed preview iframe"
    return html.unescape(match.group(1))


def test_preview_shows_subject_text_and_sandboxed_html_and_creates_nothing(signed_in, redis_conn):
    data = form_data(action="preview", ctx_name="<b>Ann</b>", preview_recipient="b@example.com")
    page = signed_in.post("/", data).content.decode()
    assert '<dd id="preview-subject">Welcome to reservemail, &lt;b&gt;Ann&lt;/b&gt;</dd>' in page
    assert '<dd id="preview-to">b@example.com</dd>' in page
    assert "Hello &lt;b&gt;Ann&lt;/b&gt;," in re.search(r'<pre id="preview-text"[^>]*>(.*?)</pre>', page, re.S)[1]
    # The HTML part, escaped by the template engine as the worker renders it, then escaped again for srcdoc.
    assert "<p>Hello &lt;b&gt;Ann&lt;/b&gt;,</p>" in srcdoc(page)
    assert (Task.objects.count(), Delivery.objects.count(), redis_conn.keys("rq:*")) == (0, 0, [])


def test_preview_with_bad_input_shows_the_errors_of_a_submit(signed_in):
    page = signed_in.post("/", form_data(action="preview", recipients="nope")).content.decode()
    assert field_errors(page, "recipients") == ["“nope” is not a valid e-mail address."]
    assert "Nothing to preview yet. Please correct the marked fields." not in page  # the service refused it
    assert 'id="mail-preview"' not in page
    page = signed_in.post("/", form_data(action="preview", description="")).content.decode()
    assert field_errors(page, "description") == ["This field is required."]
    assert "Nothing to preview yet. Please correct the marked fields." in page
    assert 'id="mail-preview"' not in page
    page = signed_in.post("/", form_data(action="preview", preview_recipient="x@example.com")).content.decode()
    assert field_errors(page, "preview_recipient") == ["“x@example.com” is not one of the recipients."]
    assert Task.objects.count() == 0


def test_test_send_goes_to_the_user_as_a_test_task(signed_in, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        page = signed_in.post("/", form_data(action="test", preview_recipient="b@example.com"), follow=True)
    task = Task.objects.get()
    assert (task.is_test, task.subject_prefix, task.status) == (True, "[TEST] ", "queued")
    assert task.recipients == ["alice@example.com"]
    assert task.context == {"name": "Alice"}
    text = page.content.decode()
    assert f"Test #{task.pk} is being sent to alice@example.com." in text
    assert 'value="June news"' in text, "the form stays filled in"
    history = signed_in.get("/tasks/").content.decode()
    assert '<span class="badge test-badge">Test</span>' in history


def token_of_test_button(page: str) -> str:
    found = re.search(r'name="test_submission" value="([0-9a-f]{32})"', page)
    assert found, "the page carries no test_submission value"
    return found.group(1)


def test_a_test_posted_twice_from_one_page_sends_one_test_and_the_next_click_another(
    signed_in, django_capture_on_commit_callbacks
):
    """A double click without the page's script, or a browser that resends: one test; a click on the answer: another."""
    data = form_data(action="test", test_submission=token_of_test_button(signed_in.get("/").content.decode()))
    with django_capture_on_commit_callbacks(execute=True):
        first = signed_in.post("/", data).content.decode()
        twin = signed_in.post("/", data).content.decode()
    (task,) = Task.objects.all()
    assert f"Test #{task.pk} is being sent to alice@example.com." in first
    told = f"This test was already sent; nothing more was sent. Test #{task.pk} is being sent to alice@example.com."
    assert told in twin
    assert 'value="June news"' in twin, "the form stays filled in"
    assert token_of_test_button(first) != token_of_test_button(twin) != data["test_submission"]
    with django_capture_on_commit_callbacks(execute=True):
        signed_in.post("/", {**data, "test_submission": token_of_test_button(twin)})
    assert Task.objects.filter(is_test=True).count() == 2


def test_a_refused_test_stores_nothing_and_may_be_sent_once_corrected(signed_in, django_capture_on_commit_callbacks):
    token = token_of_test_button(signed_in.get("/").content.decode())
    refused = signed_in.post("/", form_data(action="test", test_submission=token, preview_recipient="x@example.com"))
    assert "The test was not sent" in refused.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        signed_in.post("/", form_data(action="test", test_submission=token))
    assert Task.objects.filter(is_test=True).count() == 1


def test_test_send_without_an_address_is_refused(client, other_user):
    client.force_login(other_user)
    page = client.post("/", form_data(action="test")).content.decode()
    assert "Your account has no e-mail address, so a test cannot be sent to you." in page
    assert Task.objects.count() == 0


@pytest.mark.parametrize(("encoding", "prefix"), [("cp949", b""), ("utf-8", b"\xef\xbb\xbf")])
def test_csv_upload_is_reviewed_first_then_sent_from_the_kept_text(
    signed_in, redis_conn, django_capture_on_commit_callbacks, encoding, prefix
):
    upload = SimpleUploadedFile("people.csv", prefix + KOREAN_CSV.encode(encoding), content_type="text/csv")
    data = form_data(recipients="", recipients_file=upload, ctx_name="", ctx_site_name="Hanbit")
    page = signed_in.post("/", data).content.decode()
    assert Task.objects.count() == 0 and redis_conn.keys("rq:*") == []
    assert "Nothing was sent yet: check the recipients read from the file, then send." in page
    assert "2 recipients read from the file" in page and "1 duplicate row merged" in page
    assert "From the file's columns: name, message" in page
    assert "Same for everyone (typed above): site_name" in page
    assert "<td>kim@example.com</td><td>김민준</td><td>화요일</td>" in page
    assert '<dd id="preview-subject">Welcome to Hanbit, 김민준</dd>' in page
    kept = html.unescape(re.search(r'name="recipients_csv" value="([^"]*)"', page)[1])
    assert kept == KOREAN_CSV

    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post("/", form_data(recipients="", recipients_csv=kept, ctx_name=""))
    assert response.status_code == 302
    task = Task.objects.get()
    assert task.recipients == [
        {"address": "kim@example.com", "name": "김민준", "context": {"name": "김민준", "message": "화요일"}},
        {"address": "lee@example.com", "name": "이서연", "context": {"name": "이서연"}},
    ]


def test_csv_with_a_bad_row_is_refused_by_line_and_nothing_is_sent(signed_in, redis_conn):
    text = "email,name\nok@example.com,Ok\nnot-an-address,Bad\n"
    page = signed_in.post("/", form_data(recipients="", recipients_file=csv_file(text))).content.decode()
    assert field_errors(page, "recipients_file") == ["Line 3: “not-an-address” is not a valid e-mail address."]
    assert re.search(r'<input type="hidden" name="recipients_csv" id="id_recipients_csv">', page), "nothing kept"
    assert (Task.objects.count(), redis_conn.keys("rq:*")) == (0, [])


def test_no_recipients_at_all_is_required_error(signed_in):
    page = signed_in.post("/", form_data(recipients="")).content.decode()
    assert field_errors(page, "recipients") == ["This field is required."]


def test_admin_preview_renders_without_creating(admin_client, redis_conn):
    data = {**form_data(action="preview"), "owner": "", "reserve": ""}
    data["owner"] = str(admin_client.get("/admin/tasks/task/add/").context["request"].user.pk)
    page = admin_client.post("/admin/tasks/task/add/", data).content.decode()
    assert '<dd id="preview-subject">Welcome to reservemail, Alice</dd>' in page
    assert "<p>Hello Alice,</p>" in srcdoc(page)
    assert Task.objects.count() == 0


def test_typed_recipients_and_a_csv_are_sent_together(signed_in, django_capture_on_commit_callbacks):
    kept = "email,name\nkim@example.com,김민준\na@example.com,Dup\n"
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post("/", form_data(recipients="a@example.com", recipients_csv=kept))
    assert response.status_code == 302
    assert Task.objects.get().recipients == [
        "a@example.com",
        {"address": "kim@example.com", "name": "김민준", "context": {"name": "김민준"}},
    ]


def test_a_csv_too_large_to_keep_in_the_page_is_refused(signed_in, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4400  # 3300 bytes of CSV at most
    rows = "".join(f"r{i:04d}@example.com,이름{i:04d}\n" for i in range(120))  # fits in CP949, not as UTF-8
    data = ("email,name\n" + rows).encode("cp949")
    assert len(data) < 3300 < len(data.decode("cp949").encode())
    page = signed_in.post("/", form_data(recipients="", recipients_file=csv_file(data.decode("cp949"), "cp949")))
    assert field_errors(page.content.decode(), "recipients_file") == [
        "The file is too large: at most 3 KB as UTF-8 text."
    ]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2621440
    page = signed_in.post("/", form_data(recipients="", recipients_file=csv_file(data.decode("cp949"), "cp949")))
    assert "120 recipients read from the file" in page.content.decode()


def test_task_page_shows_each_recipients_name_and_data(signed_in, user):
    task = Task.objects.create(owner=user, template="welcome", recipients=[], description="x", status="finished")
    Delivery.objects.create(task=task, address="kim@example.com", name="김민준", context={"message": "월요일"})
    page = signed_in.get(f"/tasks/{task.pk}/").content.decode()
    assert '<div>김민준</div><div><span class="muted">message:</span> 월요일</div>' in page


def test_the_copy_a_recipient_got_is_rendered_from_its_delivery(signed_in, user, other_user):
    task = Task.objects.create(
        owner=user,
        template="welcome",
        recipients=[],
        context={"site_name": "Hanbit", "name": "friend"},
        description="x",
        status="finished",
        subject_prefix="[TEST] ",
        is_test=True,
    )
    kim = Delivery.objects.create(task=task, address="kim@example.com", name="김민준", context={"name": "민준"})
    detail = signed_in.get(f"/tasks/{task.pk}/").content.decode()
    assert f'href="/tasks/{task.pk}/deliveries/{kim.pk}/"' in detail
    page = signed_in.get(f"/tasks/{task.pk}/deliveries/{kim.pk}/").content.decode()
    assert '<dd id="preview-to">김민준 &lt;kim@example.com&gt;</dd>' in page
    assert '<dd id="preview-subject">[TEST] Welcome to Hanbit, 민준</dd>' in page
    assert "<p>Hello 민준,</p>" in srcdoc(page)
    assert signed_in.get(f"/tasks/{task.pk}/deliveries/{kim.pk + 1}/").status_code == 404
    signed_in.force_login(other_user)
    assert signed_in.get(f"/tasks/{task.pk}/deliveries/{kim.pk}/").status_code == 404


def test_the_copy_of_a_bulk_mail_shows_a_sample_unsubscribe_link_not_the_recipients(signed_in, user):
    """The sender sees what the recipient got, except the recipient's own link (their only credential)."""
    task = Task.objects.create(
        owner=user,
        template="newsletter",
        recipients=[],
        context={"title": "June", "body": "News"},
        description="x",
        status="finished",
    )
    kim = Delivery.objects.create(task=task, address="kim@example.com")
    page = signed_in.get(f"/tasks/{task.pk}/deliveries/{kim.pk}/").content.decode()
    real = unsubscribe_links(address="kim@example.com", list_name="newsletter").url
    assert real.rsplit("/u/", 1)[1].rstrip("/") not in page
    assert sample_links().url in srcdoc(page)


def test_remove_this_file_forgets_the_kept_csv_and_keeps_what_was_typed(signed_in, redis_conn):
    kept = "email,name\nkim@example.com,김민준\n"
    page = signed_in.post("/", form_data(recipients="", recipients_csv=kept, action="preview")).content.decode()
    assert 'id="forget-csv"' in page
    page = signed_in.post("/", form_data(recipients="", recipients_csv=kept, action="forget_csv")).content.decode()
    assert 'id="csv-review"' not in page and "kim@example.com" not in page
    assert 'value="June news"' in page and 'class="errorlist' not in page
    assert (Task.objects.count(), redis_conn.keys("rq:*")) == (0, [])


def test_task_page_shows_each_recipients_data_before_it_is_sent(signed_in, user):
    """A reservation has no deliveries yet: its recipients' own data is read from the task, to check before it goes."""
    task = Task.objects.create(
        owner=user,
        template="welcome",
        recipients=[
            "a@example.com",
            {"address": "kim@example.com", "name": "김민준", "context": {"message": "<b>월요일</b>"}},
        ],
        description="x",
        status="reserved",
        reserved_at=timezone.now() + timedelta(hours=1),
    )
    page = signed_in.get(f"/tasks/{task.pk}/").content.decode()
    assert "<td>김민준 &lt;kim@example.com&gt;</td>" in page
    assert '<div><span class="muted">message:</span> &lt;b&gt;월요일&lt;/b&gt;</div>' in page


def test_admin_pages_name_the_sites_icon(admin_client):
    assert 'rel="icon" href="/static/img/favicon.svg"' in admin_client.get("/admin/").content.decode()
