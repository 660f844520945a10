# Sphinx configuration of the fpesa documentation.
#
# Built by scripts/docs.sh (`make docs`) with Debian's python3-sphinx and
# warnings as errors. Only Sphinx itself is used: no extension outside the
# standard library of Sphinx, the default alabaster theme.

project = "fpesa"
author = "the fpesa authors"
copyright = "the fpesa authors"
release = "1.0"
version = "1.0"

extensions = []

root_doc = "index"
exclude_patterns = ["_build", "examples/README.rst"]
templates_path = []
html_static_path = []

highlight_language = "none"
pygments_style = "sphinx"

html_theme = "alabaster"
html_title = "fpesa documentation"
html_theme_options = {
    "description": "REST to RabbitMQ, plugins and a live feed",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "230px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}
html_show_sourcelink = False

# Manual pages (sphinx-build -b man; `make man`, installed by `make install`).
man_pages = [
    ("man/fpesa-restmapper", "fpesa-restmapper", "REST routes of endpoints.yaml onto RabbitMQ",
     [author], 8),
    ("man/fpesa-liveupdate", "fpesa-liveupdate", "live endpoints from RabbitMQ to websockets",
     [author], 8),
    ("man/fpesa-handler", "fpesa-handler", "host of fpesa handler plugins", [author], 8),
    ("man/fpesa-endpoints.yaml", "fpesa-endpoints.yaml", "the fpesa configuration file",
     [author], 5),
]
man_show_urls = False

# Every cross reference must resolve: a dangling one is a warning, and
# warnings fail the build.
nitpicky = True


def setup(app):
    # ".. confval:: http.listen" documents one key of endpoints.yaml and can be
    # referred to as :confval:`http.listen`. tests/integration/test_docs.py
    # reads these directives to compare the documented keys with the loader's.
    app.add_object_type(
        "confval",
        "confval",
        objname="endpoints.yaml key",
        indextemplate="pair: %s; endpoints.yaml key",
    )
    return {"parallel_read_safe": True}
