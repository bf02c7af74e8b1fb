from django import template
from django.template.defaultfilters import floatformat
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join

from deployments.audit.changes import readable
from deployments.selectors.health import page_query

register = template.Library()


@register.filter
def iso_datetime(value):
    """An ISO string kept in a JSON field, as a datetime the date filters understand."""
    return parse_datetime(value) if isinstance(value, str) else value


@register.filter
def sparkline_points(values, size="80x20"):
    """SVG polyline points for a small latency sparkline (newest on the right)."""
    values = [v for v in (values or [])[-40:] if isinstance(v, (int, float))]
    if len(values) < 2:
        return ""
    width, height = (int(n) for n in size.split("x"))
    top = max(values) or 1
    step = width / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - (v / top) * (height - 2) - 1:.1f}" for i, v in enumerate(values))


@register.filter
def make_list_words(value: str) -> list[str]:
    return value.split()


@register.filter
def status_words(value) -> str:
    """pending_approval -> pending approval: a status as words, not an identifier."""
    return str(value or "").replace("_", " ")


@register.filter
def entry(mapping, key):
    """mapping[key], or {} when it has none (a JSON field's dict looked up by a loop variable)."""
    return (mapping or {}).get(key) or {}


@register.filter
def seconds_words(seconds) -> str:
    """A duration in seconds as "3 min 12 s" (or "8 s")."""
    if seconds is None:
        return ""
    seconds = max(0, round(seconds))
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


@register.filter
def range_query(range_key: str, history_kind: str = "") -> str:
    """The deployment page's query string for a time range and a History filter."""
    return page_query(range_key, history_kind)


# Details keys that say in a few words what an event was about, in this order.
_SUMMARY_KEYS = ("error", "reason", "why", "message", "comment")


@register.filter
def event_summary(event) -> str:
    """A short line from an audit event's details (its error, reason or comment)."""
    details = getattr(event, "details", None) or {}
    for key in _SUMMARY_KEYS:
        value = details.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


@register.simple_tag
def tile_figures(figures) -> str:
    """An Overview tile's figures as a <dl>. Built here rather than in the
    template: a wall of 120 tiles is drawn every 10 seconds, and this is
    several times faster than the same markup through template tags."""
    return format_html('<dl class="tile-figures">{}</dl>', format_html_join("", "{}", ((_figure(f),) for f in figures)))


def _figure(figure) -> str:
    if figure.value is not None:
        shown = format_html("<strong>{}</strong>&#8239;{}", floatformat(figure.value, -1), figure.unit)
    elif not figure.given:
        shown = format_html('<abbr title="{}">n/a</abbr>', figure.missing)
    else:
        shown = format_html('<span class="muted" title="{}">—</span>', figure.missing)
    spark = ""
    if figure.lines:
        spark = format_html(
            '<svg class="spark" viewBox="0 0 100 24" preserveAspectRatio="none" aria-hidden="true" focusable="false">'
            "{}</svg>",
            format_html_join("", '<polyline points="{}"/>', ((line,) for line in figure.lines)),
        )
    return format_html("<div><dt>{}</dt><dd>{} {}</dd></div>", figure.label, shown, spark)


@register.filter
def readable_json(value) -> str:
    """A JSON field's value to read: text as it is, anything else indented."""
    return readable(value)
