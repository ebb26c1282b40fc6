"""The python-dotenv side of the dotenv tests (tests/support/python_dotenv.rs).

Reads a JSON request on stdin: {"env": {NAME: VALUE}, "cases": [{"path": P,
"bom": B}], "disabled": [V]} and prints {"cases": [...], "disabled": [...]}.
For each case, what python-dotenv 1.2.2 makes of the file: `dotenv_values(path)` (which resolves with override=True),
`DotEnv(path, override=False).dict()` (what `load_dotenv` computes before it
sets anything), the names of the lines it warned about, and for a BOM case
the same on the file without its BOM. The environment interpolation sees is
replaced by the request's before each parse. For each "disabled" value V,
whether python-dotenv takes PYTHON_DOTENV_DISABLED=V as true.

Exit 3: python-dotenv is not importable; exit 4: another version.
"""
import json
import logging
import os
import sys
import tempfile

try:
    import dotenv
    from dotenv.main import DotEnv, _load_dotenv_disabled
    from importlib.metadata import version
except ImportError as e:
    sys.stderr.write("python-dotenv is not importable (%s); run scripts/test.sh "
                     "or `python3 -m pip install python-dotenv==1.2.2`\n" % e)
    sys.exit(3)
found = version("python-dotenv")
if found != "1.2.2":
    sys.stderr.write("python-dotenv %s is installed; the tests compare with 1.2.2 "
                     "(scripts/test.sh installs it)\n" % found)
    sys.exit(4)

req = json.load(sys.stdin)
warned = []


class Capture(logging.Handler):
    def emit(self, record):
        warned.append(record.args[0] if record.args else None)


log = logging.getLogger("dotenv.main")
log.addHandler(Capture())
log.propagate = False


def run(path):
    del warned[:]
    os.environ.clear()
    os.environ.update(req["env"])
    values = [list(kv) for kv in dotenv.dotenv_values(path, interpolate=True).items()]
    load = [list(kv) for kv in DotEnv(path, interpolate=True, override=False).dict().items()]
    return {"values": values, "load": load, "warnings": list(warned)}


out = []
for case in req.get("cases", []):
    r = run(case["path"])
    if case.get("bom"):
        data = open(case["path"], "rb").read()
        assert data.startswith(b"\xef\xbb\xbf")
        with tempfile.NamedTemporaryFile(suffix=".env", delete=False) as f:
            f.write(data[3:])
        try:
            r["without_bom"] = run(f.name)
        finally:
            os.unlink(f.name)
    out.append(r)
disabled = []
for v in req.get("disabled", []):
    os.environ.clear()
    os.environ["PYTHON_DOTENV_DISABLED"] = v
    disabled.append(_load_dotenv_disabled())
json.dump({"cases": out, "disabled": disabled}, sys.stdout)
