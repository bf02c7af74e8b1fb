"""A bare WSGI app that sends back the body it was sent: the floor of moving
a tensor through a Python WSGI server at all, with no Django and no Triton.
bench/console_overhead.py serves it with the same gunicorn settings as the
dashboard."""


def app(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
    return [body]
