"""Every named URL pattern of the project, from the resolver: tests that
must cover all URLs cover the new ones the day they are added."""

from django.urls import URLPattern, URLResolver, get_resolver


def url_patterns(resolver=None, prefix=""):
    """(namespaced name, its parameters) for each named pattern."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            namespace = f"{entry.namespace}:" if entry.namespace else ""
            yield from url_patterns(entry, prefix + namespace)
        elif isinstance(entry, URLPattern) and entry.name:
            yield prefix + entry.name, list(entry.pattern.regex.groupindex)
