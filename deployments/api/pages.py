"""Cursor paging of the API's lists: a `next` link is this request's URL
with the cursor moved on, so every filter the client sent is kept."""

from django.urls import reverse


def next_link(request, url_name: str, cursor: str, value: int) -> str:
    query = request.GET.copy()
    query[cursor] = str(value)
    return request.build_absolute_uri(f"{reverse(url_name)}?{query.urlencode()}")
