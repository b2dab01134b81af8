"""Models: the store, with each model's card."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import services, state
from dashboard.components.sidebar import md, page_setup
from model_zoo import DEFAULT_MODEL_ID

page_setup("Models")
folder = services.store_folder()  # None on a shared server: it shows no server path
st.caption("The model store." if folder is None else f"The model store: {md(folder)} (set LOUPE_HOME to move it).")
cards = services.store_models()
if not cards:
    st.info(f"The store is empty. Build the default model with `python -m model_zoo prepare` ({DEFAULT_MODEL_ID}).")
    st.stop()


def _metric(card: dict[str, Any], key: str) -> float | None:
    value = ((card.get("metrics") or {}).get("test") or {}).get(key)
    return float(value) if isinstance(value, (int, float)) else None


table = pd.DataFrame([{
    "id": c["id"], "task": c.get("task"), "labels": ", ".join(map(str, c.get("labels", []))),
    "method": c.get("method"), "test accuracy": _metric(c, "accuracy"), "test macro F1": _metric(c, "f1_macro"),
    "created": c.get("created"),
} for c in cards])
st.dataframe(table, hide_index=True, width="stretch",
             column_config={"test accuracy": st.column_config.NumberColumn(format="%.3f"),
                            "test macro F1": st.column_config.NumberColumn(format="%.3f")})

for card in cards:
    with st.expander(f"{card['id']}"):
        cols = st.columns([2, 1])
        with cols[0]:
            shown = services.shown_card(card)
            st.json(json.loads(json.dumps(shown, default=str)), expanded=1)
        with cols[1]:
            if folder is not None:
                st.caption("Folder")
                st.code(card["path"], language=None)
            if st.button("Explain with this model", key=state.models_use(card["id"])):
                state.use_model(card["id"])
                st.switch_page("app_pages/explain.py")
