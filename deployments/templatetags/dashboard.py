from django import template
from django.utils.dateparse import parse_datetime

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
