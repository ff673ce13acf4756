"""Sphinx extension for the book: list each <script> of a page once.

With Jupyter Book 1.x on Sphinx 7, the inline scripts that sphinx-thebe and
sphinx-togglebutton register end up twice in every page's ``script_files`` (once with
filename None, once with filename ""). The second copy of sphinx-thebe's
``const THEBE_JS_URL = ...`` is a JavaScript error in the browser ("Identifier
'THEBE_JS_URL' has already been declared"), which the browser test (browser_tests/)
reports. Keeping the first of several scripts with the same file and attributes removes
it and changes nothing else.
"""

from __future__ import annotations


def _unique_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # None and "" both mean an inline script
        filename = getattr(script, "filename", script) or ""
        attributes = getattr(script, "attributes", {})
        key = (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
