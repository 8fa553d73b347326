"""`ftc board`: a web page to write specs and see their plans live, launch them, and watch runs.

Built on FastAPI with one small page of plain HTML and JavaScript (no build step, no CDN: it works offline),
rather than on Gradio as LLaMA-Factory's board is: FastAPI and uvicorn are already ftc's web stack (`ftc serve`),
so the board adds no 100-MB dependency; and its JSON endpoints are a contract that the page and the tests
share, so the page is a thin view over the same functions the CLI calls (validation, planning, launching,
the run folder's records).

Modules: `paths` keeps every read and write inside the board's folder; `runs` finds run folders and tells their
state; `editor` validates, plans, saves and launches a spec; `app` holds the routes and the token check;
`server` starts it.
"""
