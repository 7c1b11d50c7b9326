"""Suppression services and the send loop's selector: normalized, idempotent, one query for many addresses."""

import pytest

from subscriptions import services
from subscriptions.exceptions import SuppressionError
from subscriptions.models import Suppression
from subscriptions.selectors import is_suppressed, suppressed_among

pytestmark = pytest.mark.django_db


def test_suppress_address_lowercases_and_is_idempotent():
    first, created = services.suppress_address(address=" Ann@Example.COM ", list_name="newsletter", how="page")
    again, created_again = services.suppress_address(address="ann@example.com", list_name="newsletter", how="api")
    assert created is True and created_again is False and again.pk == first.pk
    assert list(Suppression.objects.values_list("address", "list_name", "how")) == [
        ("ann@example.com", "newsletter", "page")
    ]


@pytest.mark.parametrize(
    ("address", "list_name", "field"),
    [("not-an-address", "newsletter", "address"), ("a@example.com", "news letter", "list_name")],
)
def test_suppress_address_refuses_invalid_input(address, list_name, field):
    with pytest.raises(SuppressionError) as info:
        services.suppress_address(address=address, list_name=list_name, how="api")
    assert info.value.field == field
    assert not Suppression.objects.exists()


def test_suppressed_among_is_one_query_and_honours_all_bulk(django_assert_num_queries):
    services.suppress_address(address="a@example.com", list_name="newsletter", how="page")
    services.suppress_address(address="b@example.com", list_name="", how="admin")
    pairs = [(f"{c}@example.com", "newsletter") for c in "abc"] + [("A@example.com", "offers"), ("B@Example.com", "x")]
    with django_assert_num_queries(1):
        found = suppressed_among(pairs)
    assert found == {("a@example.com", "newsletter"), ("b@example.com", "newsletter"), ("B@Example.com", "x")}
    assert is_suppressed(address="A@EXAMPLE.COM", list_name="newsletter")
    assert not is_suppressed(address="a@example.com", list_name="offers")


def test_change_and_remove_suppression():
    row, _ = services.suppress_address(address="a@example.com", list_name="newsletter", how="admin")
    other, _ = services.suppress_address(address="b@example.com", list_name="newsletter", how="admin")
    changed = services.change_suppression(suppression_id=row.pk, address="C@example.com", list_name="")
    assert (changed.address, changed.list_name) == ("c@example.com", "")
    with pytest.raises(SuppressionError, match="already suppressed"):
        services.change_suppression(suppression_id=other.pk, address="c@example.com", list_name="")
    assert services.remove_suppression(suppression_id=row.pk) is True
    assert services.remove_suppression(suppression_id=row.pk) is False
    assert list(Suppression.objects.values_list("address", flat=True)) == ["b@example.com"]
