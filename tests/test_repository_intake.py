"""Uploads and imports: safe unpacking, rejection of every unsafe kind of input."""

import io
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from deployments.errors import DomainError
from deployments.models import AuditEvent, ModelRepository, TritonModel
from deployments.services.repositories import repository_import, repository_upload
from tests import archives

pytestmark = pytest.mark.django_db


@pytest.fixture
def deployer(django_user_model):
    from tests.conftest import make_user

    return make_user(django_user_model, "deployer", "deployer")


def upload(actor, data: bytes, filename="repo.zip", name="demo"):
    return repository_upload(name=name, archive=SimpleUploadedFile(filename, data), filename=filename, actor=actor)


def stored_files(settings) -> list[Path]:
    root = Path(settings.STORAGE_ROOT)
    return [p for sub in ("repositories", "staging") if (root / sub).exists() for p in (root / sub).rglob("*")]


def assert_rejected(actor, data, settings, *, filename="repo.zip", says: str):
    with pytest.raises(DomainError) as caught:
        upload(actor, data, filename)
    assert says in caught.value.message
    assert caught.value.path == "archive"
    assert not ModelRepository.objects.exists()
    assert not TritonModel.objects.exists()
    assert stored_files(settings) == []
    event = AuditEvent.objects.get(action="repository.rejected")
    assert says.split(":")[0] in event.details["reason"] + event.details["entry"]
    return caught.value


def test_it_records_a_bare_repository_from_a_zip(deployer, settings):
    outcome = upload(deployer, archives.make_zip(archives.add_sub_files()))
    repository = outcome.repository
    assert outcome.created
    assert repository.status == "valid"
    assert repository.found_at == ""
    assert [m.name for m in repository.models.all()] == ["add_sub"]
    assert (repository.path / "add_sub" / "1" / "model.py").is_file()
    assert repository.path.is_relative_to(Path(settings.STORAGE_ROOT))
    event = AuditEvent.objects.get(action="repository.uploaded")
    assert event.object_id == str(repository.pk)
    assert event.after["digest"] == repository.digest


def test_it_finds_the_triton_folder_of_the_azure_ml_layout(deployer):
    files = archives.tree_of(archives.EXAMPLES / "azureml_layout", prefix="project/")
    repository = upload(deployer, archives.make_tar_gz(files), "azure.tar.gz").repository
    assert repository.found_at == "project/models/triton"
    assert [m.name for m in repository.models.all()] == ["scale"]


def test_it_unwraps_a_single_top_folder(deployer):
    files = archives.add_sub_files(prefix="model_repository/")
    repository = upload(deployer, archives.make_zip(files)).repository
    assert repository.found_at == "model_repository"
    assert repository.status == "valid"


def test_the_digest_ignores_the_archive_format_and_recognises_identical_content(deployer):
    first = upload(deployer, archives.make_zip(archives.add_sub_files()), "a.zip", name="add-sub")
    again = upload(deployer, archives.make_tar_gz(archives.add_sub_files(prefix="wrapped/")), "b.tgz", name="add-sub")
    assert not again.created
    assert again.repository.pk == first.repository.pk
    assert ModelRepository.objects.count() == 1
    changed = archives.add_sub_files()
    changed["add_sub/1/model.py"] += b"\n# edited\n"
    other = upload(deployer, archives.make_zip(changed), name="add-sub")
    assert other.created
    assert (first.repository.revision, other.repository.revision) == (1, 2)
    assert other.repository.digest != first.repository.digest


def test_it_ignores_macos_metadata(deployer):
    files = archives.add_sub_files()
    files["__MACOSX/add_sub/._config.pbtxt"] = b"\x00\x05\x16\x07"
    files["add_sub/.DS_Store"] = b"\x00\x00\x00\x01Bud1"
    repository = upload(deployer, archives.make_zip(files)).repository
    assert repository.digest == upload(deployer, archives.make_zip(archives.add_sub_files())).repository.digest


def test_it_names_the_archive_from_its_file_when_no_name_is_given(deployer):
    outcome = repository_upload(
        name="",
        archive=SimpleUploadedFile("resnet.tar.gz", archives.make_tar_gz(archives.add_sub_files())),
        filename="resnet.tar.gz",
        actor=deployer,
    )
    assert outcome.repository.name == "resnet"


# --- bad input ------------------------------------------------------------------


def test_it_rejects_path_traversal(deployer, settings, tmp_path):
    files = archives.add_sub_files()
    files["../../escaped.txt"] = b"gotcha"
    assert_rejected(deployer, archives.make_tar_gz(files), settings, filename="x.tgz", says="outside the archive")
    assert not (Path(settings.STORAGE_ROOT).parent / "escaped.txt").exists()


def test_it_rejects_absolute_paths(deployer, settings):
    files = {"/etc/cron.d/evil": b"* * * * * root true", **archives.add_sub_files()}
    assert_rejected(deployer, archives.make_tar_gz(files), settings, says="absolute path")


def test_it_rejects_tar_symlinks(deployer, settings):
    link = archives.tar_special("add_sub/1/model.py", tarfile.SYMTYPE, "/etc/passwd")
    data = archives.make_tar_gz({"add_sub/config.pbtxt": b'backend: "python"'}, extra=[link])
    error = assert_rejected(deployer, data, settings, says="symbolic links are not allowed")
    assert "add_sub/1/model.py" in str(error)


def test_it_rejects_tar_hard_links(deployer, settings):
    link = archives.tar_special("add_sub/1/copy.py", tarfile.LNKTYPE, "add_sub/1/model.py")
    assert_rejected(deployer, archives.make_tar_gz(archives.add_sub_files(), [link]), settings, says="hard links")


def test_it_rejects_zip_symlinks(deployer, settings):
    assert_rejected(deployer, archives.zip_symlink("add_sub/1/model.py", "/etc/passwd"), settings, says="symbolic")


def test_it_rejects_device_files(deployer, settings):
    device = archives.tar_special("add_sub/1/disk", tarfile.BLKTYPE)
    assert_rejected(deployer, archives.make_tar_gz(archives.add_sub_files(), [device]), settings, says="regular files")


def test_it_rejects_too_many_entries(deployer, settings):
    settings.REPOSITORY_MAX_ENTRIES = 10
    files = {f"m/1/f{n}.txt": b"x" for n in range(11)}
    assert_rejected(deployer, archives.make_zip(files), settings, says="too many entries")
    assert_rejected_tar = archives.make_tar_gz(files)
    with pytest.raises(DomainError, match="too many entries"):
        upload(deployer, assert_rejected_tar, "x.tgz")


def test_it_rejects_archives_that_unpack_too_large(deployer, settings):
    settings.REPOSITORY_MAX_TOTAL_BYTES = 1000
    files = {"m/config.pbtxt": b'backend: "python"', "m/1/model.py": b"#" * 2000}
    assert_rejected(deployer, archives.make_tar_gz(files), settings, says="bytes allowed")


def test_it_rejects_compression_bombs(deployer, settings):
    settings.REPOSITORY_MAX_COMPRESSION_RATIO = 100
    bomb = {"m/1/model.onnx": b"\x00" * (40 * 1024 * 1024)}
    assert_rejected(deployer, archives.make_zip(bomb), settings, says="compression ratio")
    rejections = AuditEvent.objects.filter(action="repository.rejected").count()
    with pytest.raises(DomainError, match="times the archive's size"):
        upload(deployer, archives.make_tar_gz(bomb), "bomb.tgz")
    assert AuditEvent.objects.filter(action="repository.rejected").count() == rejections + 1


def test_it_rejects_duplicate_entries(deployer, settings):
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")
        archive.writestr("add_sub/config.pbtxt", b'backend: "python"')
        archive.writestr("add_sub/config.pbtxt", b'backend: "onnxruntime"')
    assert_rejected(deployer, buffer.getvalue(), settings, says="appears twice")


def test_it_rejects_non_utf8_names_in_zip(deployer, settings):
    data = archives.make_zip({"m/1/cafX.txt": b"x"}).replace(b"cafX", b"caf\xe9")
    assert_rejected(deployer, data, settings, says="not UTF-8")


def test_it_rejects_non_utf8_names_in_tar(deployer, settings):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT, errors="surrogateescape") as archive:
        info = tarfile.TarInfo("m/1/caf\udce9.txt")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    assert_rejected(deployer, buffer.getvalue(), settings, says="not UTF-8")


def test_it_rejects_an_empty_archive(deployer, settings):
    assert_rejected(deployer, archives.make_zip({}), settings, says="empty")
    assert_rejected_dirs_only = archives.make_tar_gz({})
    with pytest.raises(DomainError, match="empty"):
        upload(deployer, assert_rejected_dirs_only, "e.tgz")


@pytest.mark.parametrize("data", [b"", b"hello world", b"PK\x03\x04 truncated", b"\x1f\x8b\x08 not gzip"])
def test_it_rejects_what_is_not_a_readable_archive(deployer, settings, data):
    with pytest.raises(DomainError) as caught:
        upload(deployer, data)
    assert "not a .zip" in caught.value.message or "unreadable" in caught.value.message
    assert not ModelRepository.objects.exists()
    assert stored_files(settings) == []


def test_it_rejects_an_upload_over_the_size_limit(deployer, settings):
    settings.REPOSITORY_MAX_UPLOAD_BYTES = 100
    assert_rejected(deployer, archives.make_zip(archives.add_sub_files()), settings, says="upload limit")


def test_a_binary_config_is_a_finding_not_a_crash(deployer):
    files = archives.add_sub_files()
    files["add_sub/config.pbtxt"] = b"\x08\x96\x01\x00\xff\xfe binary protobuf"
    repository = upload(deployer, archives.make_zip(files)).repository
    assert repository.status == "invalid"
    assert any("binary" in f["message"] and f["file"] == "add_sub/config.pbtxt" for f in repository.errors)


def test_a_huge_config_is_a_finding(deployer, settings):
    settings.REPOSITORY_MAX_CONFIG_BYTES = 1000
    files = archives.add_sub_files()
    files["add_sub/config.pbtxt"] += b"\n# padding\n" * 200
    repository = upload(deployer, archives.make_zip(files)).repository
    assert any("configs are small text files" in f["message"] for f in repository.errors)


# --- server-path import ----------------------------------------------------------


def test_it_imports_a_directory_under_an_allowed_root(deployer, settings):
    settings.REPOSITORY_IMPORT_ROOTS = [str(archives.EXAMPLES)]
    outcome = repository_import(name="", path=str(archives.EXAMPLES / "ensemble"), actor=deployer)
    assert outcome.repository.name == "ensemble"
    assert outcome.repository.status == "valid"
    assert sorted(m.name for m in outcome.repository.models.all()) == ["add_sub", "add_then_double", "double"]


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/etc", "not under an allowed import root"),
        ("relative/path", "absolute path"),
        ("{root}/../../etc", "not under an allowed import root"),
        ("{root}/missing", "no such directory"),
    ],
)
def test_it_refuses_paths_outside_the_import_roots(deployer, settings, path, says):
    settings.REPOSITORY_IMPORT_ROOTS = [str(archives.EXAMPLES)]
    with pytest.raises(DomainError, match=says) as caught:
        repository_import(name="x", path=path.format(root=archives.EXAMPLES), actor=deployer)
    assert caught.value.path == "path"
    assert not ModelRepository.objects.exists()


def test_it_refuses_symlinks_inside_an_imported_directory(deployer, settings, tmp_path):
    source = tmp_path / "repo"
    (source / "m" / "1").mkdir(parents=True)
    (source / "m" / "1" / "model.py").symlink_to("/etc/passwd")
    settings.REPOSITORY_IMPORT_ROOTS = [str(tmp_path)]
    with pytest.raises(DomainError, match="symbolic links"):
        repository_import(name="x", path=str(source), actor=deployer)
    assert stored_files(settings) == []


def test_importing_is_off_without_import_roots(deployer, settings):
    settings.REPOSITORY_IMPORT_ROOTS = []
    with pytest.raises(DomainError, match="turned off"):
        repository_import(name="x", path=str(archives.EXAMPLES / "add_sub"), actor=deployer)


def test_viewers_cannot_upload(viewer):
    from deployments.errors import NotAllowed

    with pytest.raises(NotAllowed):
        upload(viewer, archives.make_zip(archives.add_sub_files()))
    assert not ModelRepository.objects.exists()
