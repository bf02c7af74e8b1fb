"""What the local-target benchmarks share: a throw-away dashboard (its own
VAR_DIR, SQLite, the demo's local targets and admin) and a Python "echo"
model (FP32 [-1] in, the same out) recorded as a repository.

Import it first and call `start()` before anything imports Django's models.
"""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ECHO_CONFIG = """backend: "python"
max_batch_size: 0
input [ { name: "X" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ -1 ] } ]
"""
ECHO_MODEL = """import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor("Y", pb_utils.get_input_tensor_by_name(r, "X").as_numpy())])
                for r in requests]
"""


def start(prefix: str) -> Path:
    """Django set up on a fresh VAR_DIR (returned; the caller removes it)."""
    sys.path.insert(0, str(ROOT))
    var = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.update({"DJANGO_SETTINGS_MODULE": "dashboard.settings", "VAR_DIR": str(var), "DASHBOARD_ENV": "local"})
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    return var


def echo_repository(var: Path):
    """Migrated, the demo bootstrapped, the echo model recorded: (admin, repository, its folder)."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from deployments.services.repositories import repository_load_example

    call_command("migrate", verbosity=0)
    call_command("bootstrap_demo", "--no-examples", stdout=open(os.devnull, "w"))  # noqa: SIM115
    admin = get_user_model().objects.get(username="admin")
    folder = var / "echo-repo"
    (folder / "echo" / "1").mkdir(parents=True)
    (folder / "echo" / "config.pbtxt").write_text(ECHO_CONFIG)
    (folder / "echo" / "1" / "model.py").write_text(ECHO_MODEL)
    return admin, repository_load_example(path=folder, actor=admin).repository, folder
