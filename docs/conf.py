"""Sphinx configuration of losskit's documentation site (``make docs``; strict: ``-W -n``)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent / "src"))

import losskit  # noqa: E402

project = "losskit"
copyright = "the losskit authors"
release = losskit.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "losskit_docs",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "_ext"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# the API pages come from the docstrings (Google style, Sphinx maths), the signatures as written
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # Attributes: as fields of the class, not objects of their own

# strict: a broken reference to anything of losskit's is an error; other projects' objects (torch,
# typing, builtins) are not linked (the site has no network to fetch their inventories)
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(?!losskit\.).*")]

html_theme = "furo"
html_title = f"losskit {release}"
html_static_path = ["_static"]
html_css_files = ["losskit.css"]
html_math_renderer = "mathml"
html_show_sourcelink = False

# the atlas report copied into the site as atlas/ (make docs passes -D losskit_atlas=<folder>)
losskit_atlas = str(HERE.parent / "atlas-out")
