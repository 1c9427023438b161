"""Sphinx extension for losskit's documentation site.

- ``mathml``: renders every ``.. math::`` and ``:math:`` to MathML in the page (latex2mathml): no
  script, no network, native in every current browser. A formula it cannot convert is a warning
  (an error under ``-W``).
- ``.. losskit-api:: PAGE``: documents the public names of one API page (see :data:`PAGES`): the
  catalogued losses of its families (function, then Module) and the helpers of its modules.
- ``.. losskit-claims::``: the atlas report's claims table, read from its ``claims.json``.
- completeness: every name of ``losskit.functional.__all__``, ``losskit.nn.__all__`` and
  ``losskit.distributed.__all__`` is documented on exactly one page, with a docstring; a gap is a
  warning (an error under ``-W``).
- the atlas report folder (config value ``losskit_atlas``) is copied into the site as ``atlas/``.
"""

from __future__ import annotations

import html
import importlib
import json
import shutil
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from sphinx.util import logging

logger = logging.getLogger(__name__)

# page -> (catalogue families, module basenames whose other public names it documents)
PAGES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "regression": (("regression",), ("regression",)),
    "classification": (("classification",), ("classification", "linear_cross_entropy")),
    "focal": (("focal",), ("focal", "ghm")),
    "boxes": (("boxes",), ("boxes", "iou")),
    "margin": (("margin",), ("margin", "fused", "feature_margin")),
    "metric": (("metric",), ("metric", "mining")),
    "contrastive": (("contrastive",), ("contrastive",)),
    "distributed": ((), ()),
    "other": ((), ()),
}
NAMESPACES = ("losskit.functional", "losskit.nn", "losskit.distributed")


def public_names() -> dict[str, object]:
    """``"losskit.functional.l1_loss" -> object`` for every public name of the three namespaces."""
    out = {}
    for ns in NAMESPACES:
        mod = importlib.import_module(ns)
        for name in getattr(mod, "__all__", ()):
            out[f"{ns}.{name}"] = getattr(mod, name)
    return out


def assign() -> dict[str, list[str]]:
    """Page -> the public names documented there, in order: catalogued losses first, then helpers."""
    from losskit.catalog import CATALOG

    names = public_names()
    pages: dict[str, list[str]] = {p: [] for p in PAGES}
    done: set[str] = set()

    def put(page: str, full: str) -> None:
        if full in names and full not in done:
            pages[page].append(full)
            done.add(full)

    for page, (families, _) in PAGES.items():
        for info in CATALOG:
            if info.family in families:
                put(page, f"losskit.functional.{info.function}")
                put(page, f"losskit.nn.{info.module}")
    for full in sorted(names):
        if full in done:
            continue
        if full.startswith("losskit.distributed."):
            put("distributed", full)
            continue
        module = getattr(names[full], "__module__", "") or ""
        base = module.rsplit(".", 1)[-1]
        page = next((p for p, (_, mods) in PAGES.items() if base in mods), "other")
        put(page, full)
    return pages


class LosskitAPI(Directive):
    required_arguments = 1

    def run(self):
        page = self.arguments[0]
        if page not in PAGES:
            raise self.error(f"losskit-api: unknown page {page!r}; pages: {', '.join(PAGES)}")
        env = self.state.document.settings.env
        env.losskit_documented = getattr(env, "losskit_documented", {})
        import torch

        lines = []
        if page == "distributed":
            lines += [".. py:module:: losskit.distributed", ""]
        public = public_names()
        for base in PAGES[page][1]:  # the family modules, targets of :mod: references in docstrings
            for ns in ("losskit.functional", "losskit.nn"):
                if f"{ns}.{base}" in public:  # a module named after its function: the function wins
                    continue
                try:
                    importlib.import_module(f"{ns}.{base}")
                except ModuleNotFoundError:
                    continue
                lines += [f".. py:module:: {ns}.{base}", ""]
        objs = public_names()
        for full in assign()[page]:
            env.losskit_documented[full] = env.docname
            obj = objs[full]
            kind = "autoclass" if isinstance(obj, type) else "autofunction"
            ns, name = full.rsplit(".", 1)
            lines += [f".. currentmodule:: {ns}", "", f".. {kind}:: {name}"]
            if kind == "autoclass" and issubclass(obj, torch.nn.Module):
                lines += ["   :members: forward"]
            lines.append("")
            if not (getattr(obj, "__doc__", None) or "").strip():
                logger.warning(f"losskit-api: {full} has no docstring", location=(env.docname, self.lineno))
        if not lines:
            return [nodes.paragraph(text="Nothing public on this page in this build.")]
        container = nodes.container()
        source = StringList(lines, source=f"<losskit-api {page}>")
        self.state.nested_parse(source, self.content_offset, container)
        return container.children


class LosskitClaims(Directive):
    def run(self):
        env = self.state.document.settings.env
        folder = Path(env.config.losskit_atlas)
        path = folder / "claims.json"
        if not path.exists():
            logger.warning(f"losskit-claims: no atlas report at {folder} (run `make demo` first)")
            return [nodes.paragraph(text="No atlas report was built with this site.")]
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = []
        for c in data["claims"]:
            lo, hi = c["interval"]["low"], c["interval"]["high"]
            if c.get("kind") == "deterministic":
                iv = "exact (deterministic: one measurement)"
            else:
                iv = "no interval" if lo is None else f"[{lo:+.3g}, {hi:+.3g}]"
            eff = "n/a" if c["effect"] is None else f"{c['effect']:+.3g}"
            href = f"atlas/index.html#claim-{html.escape(c['id'])}"
            rows.append(
                f'<tr><td><a href="{href}">{html.escape(c["claim"])}</a></td>'
                f"<td>{html.escape(c['verdict'])}</td><td>{eff} {html.escape(c['unit'])} {iv}</td>"
                f"<td>{c['seeds']}</td><td>{c['minimal_effect']:g}</td></tr>"
            )
        table = (
            f"<p>Mode <b>{html.escape(data['mode'])}</b>: {len(rows)} claims.</p>"
            '<table class="docutils align-default"><thead><tr><th>Claim</th><th>Verdict</th>'
            "<th>Mean effect [95% interval]</th><th>Seeds</th><th>Minimal effect</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
        return [nodes.raw("", table, format="html")]


def _convert(latex: str, display: str) -> str:
    from latex2mathml.converter import convert

    return convert(latex.strip(), display=display)


def visit_math(self, node):
    try:
        self.body.append(_convert(node.astext(), "inline"))
    except Exception as err:  # a formula latex2mathml cannot read: say where, show the source
        logger.warning(f"mathml: cannot convert {node.astext()!r}: {err}", location=node)
        self.body.append(f"<code>{html.escape(node.astext())}</code>")
    raise nodes.SkipNode


def visit_displaymath(self, node):
    latex = node.astext()
    parts = [latex] if node.get("nowrap") else [p for p in latex.split("\n\n") if p.strip()]
    self.body.append('<div class="math-block">')
    for part in parts:
        try:
            self.body.append(_convert(part, "block"))
        except Exception as err:
            logger.warning(f"mathml: cannot convert {part!r}: {err}", location=node)
            self.body.append(f"<pre>{html.escape(part)}</pre>")
    self.body.append("</div>")
    raise nodes.SkipNode


def check_complete(app, env):
    documented = getattr(env, "losskit_documented", {})
    for full in public_names():
        if full not in documented:
            logger.warning(f"losskit docs: public name {full} is documented on no page")


def copy_atlas(app, exc):
    if exc is not None or app.builder.format != "html":
        return
    folder = Path(app.config.losskit_atlas)
    if not (folder / "index.html").exists():
        logger.warning(f"losskit docs: no atlas report at {folder}: the atlas page has nothing to show")
        return
    shutil.copytree(folder, Path(app.outdir) / "atlas", dirs_exist_ok=True)


def setup(app):
    app.add_config_value("losskit_atlas", "atlas-out", "env")
    app.add_html_math_renderer("mathml", (visit_math, None), (visit_displaymath, None))
    app.add_directive("losskit-api", LosskitAPI)
    app.add_directive("losskit-claims", LosskitClaims)
    app.connect("env-check-consistency", check_complete)
    app.connect("build-finished", copy_atlas)
    return {"version": "1", "parallel_read_safe": False, "parallel_write_safe": True}
