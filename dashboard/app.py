"""Loupe: the router. Run with ``streamlit run dashboard/app.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run dashboard/app.py` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

from dashboard.components.sidebar import require_login  # noqa: E402  (needs the path above)

st.set_page_config(page_title="Loupe", page_icon="🔎", layout="wide")
require_login()  # with st.login configured, nothing but the sign-in screen until signed in
# Not "pages/": Streamlit would treat a folder of that name as a legacy multipage app.
PAGES = Path(__file__).parent / "app_pages"
pages = [
    st.Page(PAGES / "explain.py", title="Explain", icon=":material/search:", default=True),
    st.Page(PAGES / "compare.py", title="Compare models", icon=":material/compare_arrows:", url_path="compare"),
    st.Page(PAGES / "finetune.py", title="Fine-tune", icon=":material/model_training:", url_path="finetune"),
    st.Page(PAGES / "continual.py", title="Continual fine-tuning", icon=":material/timeline:", url_path="continual"),
    st.Page(PAGES / "compress.py", title="Compress", icon=":material/compress:", url_path="compress"),
    st.Page(PAGES / "evaluate.py", title="Evaluate explainers", icon=":material/leaderboard:", url_path="evaluate"),
    st.Page(PAGES / "errors.py", title="Error analysis", icon=":material/rule:", url_path="errors"),
    st.Page(PAGES / "models.py", title="Models", icon=":material/inventory_2:", url_path="models"),
    st.Page(PAGES / "prompts.py", title="Prompt playground", icon=":material/edit_note:", url_path="prompts"),
]
# Each page draws the shared sidebar itself (dashboard.components.sidebar.page_setup), so a page also
# works when run on its own, as AppTest does after the first run.
st.navigation(pages).run()
