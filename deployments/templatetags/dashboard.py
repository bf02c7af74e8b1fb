from django import template
from django.utils.dateparse import parse_datetime

register = template.Library()


@register.filter
def iso_datetime(value):
    """An ISO string kept in a JSON field, as a datetime the date filters understand."""
    return parse_datetime(value) if isinstance(value, str) else value
