"""``phototag serve``: a local web page to search, browse and correct the library.

``server`` (uvicorn) and ``app`` (Starlette, Jinja2) import their frameworks only when the
page is served, so the other commands never pay for them.
"""
