"""
Sphinx configuration for the txftps documentation.

Build (offline, about ten seconds)::

    pip install -e '.[docs]' --config-settings editable_mode=compat
    sphinx-build -W -b html docs docs/_build/html

The narrative pages are the Markdown files in this directory (MyST). The API
reference of the whole C{txftps} package is built by pydoctor (epytext, as
Twisted does) into C{api/} of the output, as part of the same build.

Every pydoctor warning about our docstrings becomes a Sphinx warning, so
C{-W} fails the build on it. One kind is not about our docstrings: without
intersphinx (which would need the network) pydoctor cannot link to Twisted,
pyOpenSSL or the standard library, and warns for each such link, and it
cannot tell that a class deriving from an external zope interface is an
interface. Those warnings are dropped only when the name they are about
really exists: it is imported here and looked up, so a mistyped external
name (C{L{twisted.cred.portal.Portall}}) still fails the build.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from contextlib import redirect_stdout
from io import StringIO
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

_here = os.path.dirname(os.path.abspath(__file__))
_root = os.path.dirname(_here)
sys.path.insert(0, _root)

import txftps  # noqa: E402

project = "txftps"
author = "the txftps authors"
copyright = "the txftps authors"
release = version = txftps.__version__

extensions = ["myst_parser"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "examples"]
myst_heading_anchors = 3
html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"txftps {release}"

# The API reference: pydoctor, run on the whole package. Private names (a
# leading underscore, modules included) follow pydoctor's default privacy
# rules; no intersphinx: the build never touches the network.
pydoctor_args = [
    "--make-html",
    "--quiet",
    "--docformat=epytext",
    "--project-name=txftps",
    f"--project-version={release}",
    f"--project-base-dir={_root}",
    "--html-output={outdir}/api",
    os.path.join(_root, "txftps"),
]

_log = logging.getLogger("txftps.apidocs")

_missingExternal = re.compile(
    r'Cannot find link target for "(?P<name>[\w.]+)"'
    r'(, resolved from "[\w.]+")? \(you can link to external docs with --intersphinx\)$'
)
_notInterface = re.compile(r'Class "(?P<name>[\w.]+)" is not an interface$')


def _lookUp(name: str) -> Any:
    """
    The object a dotted name names, importing modules as needed.

    @raise LookupError: there is no such object.
    """
    from zope.interface.interface import InterfaceClass

    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            if isinstance(obj, InterfaceClass) and attribute in obj:
                obj = obj[attribute]  # an interface's methods and attributes
            elif hasattr(obj, attribute):
                obj = getattr(obj, attribute)
            else:
                raise LookupError(name)
        return obj
    raise LookupError(name)


def isThirdPartyNoise(line: str) -> bool:
    """
    Whether a pydoctor warning comes only from pydoctor not seeing third-party
    code (see the module docstring), and not from a mistake in our docstring.
    """
    from zope.interface.interface import InterfaceClass

    link = _missingExternal.search(line)
    if link is not None and not link.group("name").startswith("txftps."):
        try:
            _lookUp(link.group("name"))
        except LookupError:
            return False
        return True
    interface = _notInterface.search(line)
    if interface is not None:
        try:
            return isinstance(_lookUp(interface.group("name")), InterfaceClass)
        except LookupError:
            return False
    return False


def _buildAPIDocs(app: Sphinx) -> None:
    """
    Run pydoctor into C{api/} of the HTML output; report its warnings about
    our code as Sphinx warnings.
    """
    if app.builder is None or app.builder.name != "html":
        return
    from pydoctor.driver import main

    arguments = [a.format(outdir=app.outdir) for a in pydoctor_args]
    stream = StringIO()
    with redirect_stdout(stream):
        status = main(args=arguments)
    if status != 0:
        _log.warning("pydoctor exited with status %s", status)
    dropped = 0
    for line in stream.getvalue().splitlines():
        if not line.strip():
            continue
        if isThirdPartyNoise(line):
            dropped += 1
            _log.debug("pydoctor (third-party, ignored): %s", line)
        else:
            _log.warning("pydoctor: %s", line)
    _log.info(
        "pydoctor: API reference in %s/api (%d third-party link notes ignored)",
        app.outdir,
        dropped,
    )


def setup(app: Sphinx) -> dict[str, Any]:
    """
    Register the pydoctor step.
    """
    app.connect("builder-inited", _buildAPIDocs)
    return {"parallel_read_safe": True}
