"""gunicorn's settings for the dashboard's web server, in `make run`
(Procfile) and in the container (Dockerfile); the command lines add only
where to listen and how many workers.

No keep-alive: every answer says `Connection: close`. With gunicorn's idle
timeout (2 s by default) a client that reuses a connection just as the server
closes it gets "Connection reset by peer" or "Remote end closed connection
without response"; pipeline scripts polling a deployment every few seconds
(requests.Session) met exactly that. A new connection per request costs a
fraction of a millisecond on the networks the dashboard serves, and a
reverse proxy in front keeps its own client connections.

A reverse proxy put in front (docker-compose's, say) must agree: no
keep-alive to this upstream (nginx: no `keepalive` in the upstream block,
which is its default), or an upstream idle timeout shorter than the
proxy's own, so that it is never the proxy that reuses a connection this
server has just closed. Its client-side keep-alive is its own business.
"""

keepalive = 0
# Requests in flight get this long to finish when the server stops.
graceful_timeout = 5
accesslog = "-"
