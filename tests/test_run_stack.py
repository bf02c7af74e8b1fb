"""`manage.py run_stack` (what `make run` starts): supervisord's configuration
comes from the Procfile, one program per line, and a malformed Procfile is
refused naming the line."""

import pytest
from django.core.management import CommandError, call_command
from supervisor.options import ServerOptions

from deployments.management.commands.run_stack import read_procfile, supervisord_config
from tests.processes import ROOT


def parsed(config_text: str, tmp_path) -> ServerOptions:
    """The configuration as supervisord itself reads it."""
    path = tmp_path / "supervisord.conf"
    path.write_text(config_text)
    options = ServerOptions()
    options.realize(args=["--configuration", str(path)])
    return options


def test_every_procfile_process_becomes_a_restarted_program_and_web_gets_the_port(tmp_path):
    procfile = read_procfile(ROOT / "Procfile")
    names = [name for name, _ in procfile]
    assert names[0] == "web"
    assert {"worker", "periodic", "notifications", "beat"} <= set(names)

    text = supervisord_config(procfile=procfile, port=8123, var_dir=tmp_path, root=ROOT)
    options = parsed(text, tmp_path)
    assert options.nodaemon
    [group] = options.process_group_configs
    programs = {program.name: program for program in group.process_configs}
    assert list(programs) == names
    for name, command in procfile:
        program = programs[name]
        assert program.autorestart
        assert program.startretries > 1
        # Run through a shell, with the Procfile's own words (%h included).
        assert program.command == f"/bin/sh -c 'exec {command}'"
        assert program.directory == str(ROOT)
    assert programs["web"].environment["PORT"] == "8123"
    assert programs["worker"].environment["PORT"] == "8223"


def test_a_malformed_procfile_line_is_refused_naming_it(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text("web: gunicorn app\n# a comment\n\nthis line has no name\n")
    with pytest.raises(CommandError, match=r"Procfile:4: expected 'name: command'"):
        read_procfile(procfile)
    procfile.write_text("# nothing but a comment\n")
    with pytest.raises(CommandError, match="names no process"):
        call_command("run_stack", "--procfile", str(procfile))
