"""Template filters for showing a series: the live panel's "repeats weekly" label."""

from django import template

from series.rules import repeats_code, repeats_labels

register = template.Library()


@register.filter
def repeats_label(rule: str) -> str:
    """The label of an occurrence of a series with this rule, in the active language."""
    return repeats_labels().get(repeats_code(rule), "")
