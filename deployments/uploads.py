"""Request bodies are refused before they are read, and archives are
counted as they arrive.

Django reads a form's body the first time anything asks for `request.POST`
(the CSRF check does, before any view runs), and spools every file part
over FILE_UPLOAD_MAX_MEMORY_SIZE to FILE_UPLOAD_TEMP_DIR on the way. Left
alone, anyone who can reach the server can make it write as much as they
send, and a 4 GiB limit checked by the view comes after the 4 GiB is on
disk. So:

- `UploadGateMiddleware` (before the CSRF middleware, whose `process_view`
  reads the body) decides from the headers alone. On an upload endpoint the
  caller must be signed in (page) or hold a valid deploy token (API) and be
  allowed to add repositories, and the declared length must be within the
  limit; only then may the body be read, up to the limit. The console page
  takes input files the same way, from those who may use that deployment's
  console, up to CONSOLE_MAX_REQUEST_BYTES. Any other form
  body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413 at once.
- Behind the compose stack's nginx, which buffers bodies before passing
  them on, the proxy asks the same question first (`auth_request`, with
  `X-Upload-Preflight`), so it does not spool an upload the dashboard
  would refuse either (deploy/nginx/).
- `UploadLimitHandler`, first of FILE_UPLOAD_HANDLERS, accepts a file only
  where the gate allowed one, and stops reading the moment the bytes
  received pass the limit, whatever the Content-Length said, without
  reading the rest; the spooled part is removed. The upload views answer
  413 with `refusal()`; elsewhere the file is simply not there.
"""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpResponse
from django.template.defaultfilters import filesizeformat

from deployments.errors import NotAllowed
from deployments.services.permissions import require

PERMISSION = "deployments.add_modelrepository"
# URL names of the operations that take an archive.
PAGE_UPLOAD, API_UPLOAD = "repository-upload", "api:repositories"
# The console page takes .npy files and images for its inputs.
CONSOLE = "deployment-console"
# Room for the multipart envelope (boundaries, part headers, the name field) around the archive.
MULTIPART_OVERHEAD = 64 * 1024
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
_BODY_METHODS = ("POST", "PUT", "PATCH")


def limit_text(limit: int) -> str:
    return f"{filesizeformat(limit)} ({limit} bytes)"


def too_large_message(limit: int) -> str:
    return f"The archive is larger than the upload limit of {limit_text(limit)}."


def refusal(request) -> str | None:
    """Why the upload handler stopped reading this request's body, if it did."""
    return getattr(request, "upload_refusal", None)


def _declared_length(request) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0  # Django reads such a body as empty


def _api_error(status: int, code: str, message: str, path: str = ""):
    from deployments.api.errors import api_error

    return api_error(status, code, message, path)


class UploadGateMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = request.resolver_match
        name = match.view_name if match else ""
        preflight = request.headers.get("X-Upload-Preflight")
        if preflight and name in (PAGE_UPLOAD, API_UPLOAD):
            return _preflight(request, name, preflight)
        if request.method not in _BODY_METHODS or request.content_type not in FORM_TYPES:
            return None  # JSON and binary bodies: their operations bound them (deployments/api/parser.py)
        if name == PAGE_UPLOAD:
            return self._page_upload(request)
        if name == API_UPLOAD:
            return self._api_upload(request)
        if name == CONSOLE:
            return self._console_upload(request, match.kwargs.get("deployment_id"))
        declared = _declared_length(request)
        if declared > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            message = f"The form is {declared} bytes; forms here take at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE}."
            if request.path.startswith("/api/"):
                return _api_error(413, "too_large", message)
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        return None

    def _page_upload(self, request):
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        try:
            require(user, PERMISSION, "Uploading a repository")
        except NotAllowed as exc:
            from deployments.views.repositories import upload_refused

            return upload_refused(request, exc.message, status=403)
        if self._over_limit(request):
            from deployments.views.repositories import upload_refused

            return upload_refused(request, too_large_message(settings.REPOSITORY_MAX_UPLOAD_BYTES), status=413)
        request.upload_allowance = settings.REPOSITORY_MAX_UPLOAD_BYTES
        return None

    def _api_upload(self, request):
        from deployments.api.auth import authenticate_token
        from deployments.models import ApiToken

        token = authenticate_token(request)
        if token is None or token.scope == ApiToken.Scope.READ:
            # The operation answers (401, 429 or 403, counting bad tokens)
            # before it reads the body; no file is accepted meanwhile.
            return None
        try:
            require(token.user, PERMISSION, "Uploading a repository")
        except NotAllowed as exc:
            return _api_error(403, exc.code, exc.message)
        if self._over_limit(request):
            return _api_error(413, "too_large", too_large_message(settings.REPOSITORY_MAX_UPLOAD_BYTES), "archive")
        request.upload_allowance = settings.REPOSITORY_MAX_UPLOAD_BYTES
        return None

    def _console_upload(self, request, deployment_id):
        """Input files for a deployment's console, from one who may use it
        there, within the console's per-request cap (its tensors are checked
        against their own caps once read)."""
        from deployments import policy
        from deployments.models import Deployment

        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        deployment = Deployment.objects.visible_to(user).select_related("target").filter(pk=deployment_id).first()
        if deployment is None or not policy.can(user, "deployments.use_console", deployment.target.environment_id):
            return None  # takes no file; the view answers 404 or 403
        limit = settings.CONSOLE_MAX_REQUEST_BYTES
        message = f"The console takes at most {limit_text(limit)} of input files per request."
        if _declared_length(request) > limit + MULTIPART_OVERHEAD:
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        request.upload_allowance, request.upload_too_large = limit, message
        return None

    @staticmethod
    def _over_limit(request) -> bool:
        return _declared_length(request) > settings.REPOSITORY_MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD


def _preflight(request, name: str, preflight: str):
    """The front proxy's question before it reads an upload's body (nginx's
    auth_request, deploy/nginx/): would the dashboard read this one? Asked
    with the request's headers, its method and declared length in
    X-Upload-Preflight ("POST 1234"). nginx passes on 401 and 403 and counts
    any other refusal as its own error, so a body the dashboard would not
    take for its size is a 403 here."""
    method, _, length = preflight.partition(" ")
    if method not in _BODY_METHODS:
        return HttpResponse(status=204)
    if name == API_UPLOAD:
        from deployments.api.auth import TokenAuth
        from deployments.api.errors import ApiError

        try:
            # Counts a bad token against the address, as the operation would.
            user = TokenAuth()(request).user
        except ApiError as exc:
            return HttpResponse(exc.message, status=401 if exc.status in (401, 429) else 403)
    else:
        user = request.user
        if not user.is_authenticated:
            return HttpResponse("Sign in to upload.", status=401)
    try:
        require(user, PERMISSION, "Uploading a repository")
    except NotAllowed as exc:
        return HttpResponse(exc.message, status=403)
    declared = int(length) if length.isdigit() else 0
    form = request.content_type in FORM_TYPES
    limit = settings.REPOSITORY_MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD if form else settings.API_MAX_JSON_BYTES
    if declared > limit:
        return HttpResponse(too_large_message(settings.REPOSITORY_MAX_UPLOAD_BYTES), status=403)
    return HttpResponse(status=204)


class UploadLimitHandler(FileUploadHandler):
    """Counts the file bytes of a request as they arrive. A request the gate
    did not allow takes no file at all; an allowed one stops at its limit.
    Stopping resets the connection rather than reading the rest."""

    def handle_raw_input(self, input_data, meta, content_length, boundary, encoding=None):
        self.allowance = getattr(self.request, "upload_allowance", None)
        self.received = 0

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        if self.allowance is None:
            self.request.upload_refusal = "This form takes no files."
            raise StopUpload(connection_reset=True)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.allowance:
            too_large = getattr(self.request, "upload_too_large", None)
            self.request.upload_refusal = too_large or too_large_message(self.allowance)
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size):
        return None  # the handlers after this one store the file
