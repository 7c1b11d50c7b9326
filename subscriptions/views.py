"""The unsubscribe page at /u/<token>/: GET explains and offers a button; POST unsubscribes.

RFC 8058 one-click: a mail client POSTs ``List-Unsubscribe=One-Click`` to the URL of the
List-Unsubscribe header with no cookies, so this one view is exempt from CSRF. The signed token is
the only credential, and a POST does nothing but add the suppression it names (idempotent). GET
changes nothing, so a link scanner that follows the URL unsubscribes no one.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from subscriptions import services
from subscriptions.exceptions import SuppressionError
from subscriptions.models import ALL_BULK, Suppression
from subscriptions.selectors import is_suppressed
from subscriptions.tokens import BadToken, read_token

ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET: what will happen, and a button. POST: unsubscribe (one-click or the button); 400 for a bad token."""
    try:
        target = read_token(token)
    except BadToken:
        return render(request, "subscriptions/unsubscribe.html", {"invalid": True}, status=400)
    context: dict[str, object] = {"address": target.address, "list_name": target.list_name}
    if request.method != "POST":
        done = is_suppressed(address=target.address, list_name=target.list_name)
        return render(request, "subscriptions/unsubscribe.html", {**context, "done": done, "already": done})
    one_click = request.POST.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE
    list_name = ALL_BULK if not one_click and request.POST.get("scope") == "all" else target.list_name
    how = Suppression.How.ONE_CLICK if one_click else Suppression.How.PAGE
    try:
        _suppression, created = services.suppress_address(address=target.address, list_name=list_name, how=how)
    except SuppressionError:  # signed here, but from before today's address rules: nothing we can store
        return render(request, "subscriptions/unsubscribe.html", {"invalid": True}, status=400)
    context.update(done=True, already=not created, all_bulk=list_name == ALL_BULK)
    return render(request, "subscriptions/unsubscribe.html", context)
