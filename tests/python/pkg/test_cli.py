"""python -m kiln runs the same CLI."""
import subprocess
import sys

import kiln


def run(*args):
    return subprocess.run([sys.executable, "-m", "kiln", *map(str, args)], capture_output=True, text=True)


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"kiln {kiln.version()}"
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("info", "run", "freeze", "check", "bench", "show"):
        assert cmd in r.stdout


def test_info_matches_describe(models):
    r = run("info", models.example)
    assert r.returncode == 0 and r.stdout == kiln.load(models.example).describe()
    assert run("info", "/no/such.onnx").returncode == 1


def test_main_function(models, capfd):
    from kiln.__main__ import main

    assert main(["info", models.example]) == 0
    assert "use_mult" in capfd.readouterr().out
