"""The Fine-tune page's Privacy section: the choice (none / differentially private / federated) with its settings,
the live privacy curves of a running job (ε spent; per round, each client's loss) and the private part of its
results (the guarantee, and the clients with their sizes and label balance)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import state
from dashboard.components.sidebar import md
from dashboard.components.widgets import config_values
from dashboard.services import private_training as private
from model_zoo import LoupeError

_CHART = dict(height=260, margin=dict(l=0, r=0, t=30, b=0), legend=dict(orientation="h"))


@dataclasses.dataclass
class PrivacyChoice:
    """What the section chose: the run's ``dp`` and ``federated`` settings, and why it cannot start (or None)."""

    dp: Any
    federated: Any
    blocked: str | None = None


def _dp_settings(base: str, method: str, method_cfg: Any, labels: list[str], n_train: int,
                 train: Any) -> tuple[Any, str | None]:
    st.info(private.epsilon_explained(), icon="🔒")
    refusal = private.dp_refusal(base, method, method_cfg, labels)
    if refusal:
        st.error(md(refusal))
        return private.dp_config_class()(), refusal
    c1, c2, c3 = st.columns(3)
    with c1:
        values = config_values(private.dp_config_class(), state.FT_DP, scope=private.SCOPE,
                               only=["target_epsilon", "delta"])
    with c2:
        values |= config_values(private.dp_config_class(), state.FT_DP, scope=private.SCOPE,
                                only=["max_grad_norm", "noise_multiplier"])
    with c3:
        values |= config_values(private.dp_config_class(), state.FT_DP, scope=private.SCOPE,
                                only=["accountant", "poisson_sampling"])
    dp = private.dp_config_class()(enabled=True, **values)
    if dp.target_epsilon:
        try:
            sigma, delta, steps = private.noise_preview(n_train, train.batch_size, train.epochs, dp.target_epsilon,
                                                        dp.delta, dp.accountant)
            st.caption(f"To spend ε = {dp.target_epsilon:g} at δ = {delta:g} over {steps:,} steps (batches of "
                       f"{train.batch_size} in expectation from {n_train:,} texts), each step adds Gaussian noise "
                       f"with σ = {sigma:.3f} × the clipping norm to the sum of the clipped per-text gradients. DP "
                       "usually needs larger batches and more epochs than the method's recipe.")
        except LoupeError as err:
            st.error(md(err))
            return dp, str(err)
    elif not dp.noise_multiplier:
        return dp, "Set a target ε or a noise multiplier above 0."
    else:
        st.caption(f"No target ε: noise σ = {dp.noise_multiplier:g} × the clipping norm; the ε it spends is shown "
                   "while training.")
    return dp, None


def _federated_settings(columns: Sequence[str], csv: bool) -> tuple[Any, str | None]:
    why = private.federated_unavailable()
    if why:
        st.error(md(why))
        return private.federated_config_class()(), why
    st.caption("The clients run on this machine (Flower's simulation on Ray), each with its own shard of the training "
               "texts; every round the server averages their trainable weights (FedAvg, weighted by shard size) and "
               "scores the result on the validation split. Only trainable weights travel, never texts.")
    c1, c2, c3 = st.columns(3)
    with c1:
        values = config_values(private.federated_config_class(), state.FT_FED, scope=private.SCOPE,
                               only=["clients", "rounds"])
    with c2:
        values |= config_values(private.federated_config_class(), state.FT_FED, scope=private.SCOPE,
                                only=["clients_per_round", "local_epochs"])
    with c3:
        kinds = ["iid", "dirichlet"] + (["column"] if csv and columns else [])
        kind = st.selectbox("partition", kinds, key=f"{state.FT_FED}.partition",
                            format_func={"iid": "IID (at random)", "dirichlet": "non-IID: label skew (Dirichlet)",
                                         "column": "one client per value of a column"}.__getitem__) or "iid"
        values["partition"] = kind
        if kind == "dirichlet":
            values |= config_values(private.federated_config_class(), state.FT_FED, scope=private.SCOPE,
                                    only=["alpha"])
        elif kind == "column":
            values["partition_column"] = st.selectbox("column", list(columns), key=f"{state.FT_FED}.column") or ""
    fed = private.federated_config_class()(enabled=True, **values)
    if fed.partition != "column" and fed.clients_per_round > fed.clients:
        return fed, f"{fed.clients_per_round} clients per round is more than the {fed.clients} clients."
    return fed, None


def privacy_settings(base: str, method: str, method_cfg: Any, labels: list[str], n_train: int, train: Any,
                     columns: Sequence[str], csv: bool) -> PrivacyChoice:
    """Draw the Privacy choice and its settings; returns them (``blocked``: why the run cannot start as set)."""
    st.markdown("**Privacy**")
    modes = private.MODES
    mode = st.radio("Privacy", list(modes), format_func=modes.__getitem__, horizontal=True, key=state.FT_PRIVACY,
                    label_visibility="collapsed",
                    help="Differentially private: DP-SGD with a privacy budget ε (Opacus). Federated: simulated data "
                         "owners who keep their texts and share only weight updates (Flower).") or "none"
    dp, fed = private.dp_config_class()(), private.federated_config_class()()
    blocked = None
    if mode == "federated":
        fed, blocked = _federated_settings(columns, csv)
        if st.checkbox("DP-SGD on every client", key=state.FT_FED_DP,
                       help="Each client trains with DP-SGD on its own texts and keeps its own accountant."):
            dp, why = _dp_settings(base, method, method_cfg, labels, max(1, n_train // max(1, fed.clients)), train)
            blocked = blocked or why
    elif mode == "dp":
        dp, blocked = _dp_settings(base, method, method_cfg, labels, n_train, train)
    if dp.enabled:
        st.warning(private.explanations_warning(), icon="⚠️")
    return PrivacyChoice(dp, fed, blocked)


# --- a job's live curves and results -----------------------------------------------------------------------------
def privacy_curves(job_id: str, records: list[dict[str, Any]]) -> None:
    """ε spent per step (DP) and each client's loss per round (federated), from the job's metric records."""
    eps = [r for r in records if r.get("split") == "train" and r.get("epsilon") is not None]
    clients = [r for r in records if r.get("split") == "client"]
    if not eps and not clients:
        return
    left, right = st.columns(2)
    if eps:
        fig = go.Figure(go.Scatter(x=[r["step"] for r in eps], y=[r["epsilon"] for r in eps], name="ε spent",
                                   mode="lines+markers"))
        fig.update_layout(**_CHART, xaxis_title="step", yaxis=dict(rangemode="tozero"),
                          title=dict(text=f"Privacy spent: ε at δ = {eps[-1].get('delta', 0):g}", font=dict(size=13)))
        left.plotly_chart(fig, width="stretch", key=f"loupe_ft_eps_{len(records)}", config={"displayModeBar": False})
    if clients:
        fig = go.Figure()
        for cid in sorted({str(r["client"]) for r in clients}, key=lambda c: (len(c), c)):
            mine = [r for r in clients if str(r["client"]) == cid]
            fig.add_trace(go.Scatter(x=[r["round"] for r in mine], y=[r.get("loss") for r in mine],
                                     name=f"client {cid}", mode="lines+markers"))
        fig.update_layout(**_CHART, xaxis_title="round", xaxis=dict(dtick=1),
                          title=dict(text="Each client's training loss per round", font=dict(size=13)))
        (right if eps else left).plotly_chart(fig, width="stretch", key=f"loupe_ft_clients_{len(records)}",
                                              config={"displayModeBar": False})
        rounds = [r for r in records if r.get("split") == "train" and r.get("seconds") is not None]
        if rounds and not eps:
            fig = go.Figure(go.Bar(x=[r["round"] for r in rounds], y=[r["seconds"] for r in rounds]))
            fig.update_layout(**_CHART, xaxis_title="round", yaxis_title="s", xaxis=dict(dtick=1),
                              title=dict(text="Time per round (the first starts the clients)", font=dict(size=13)))
            right.plotly_chart(fig, width="stretch", key=f"loupe_ft_rounds_{len(records)}",
                               config={"displayModeBar": False})


def privacy_results(result: dict[str, Any]) -> None:
    """The guarantee a private run gives, and what each federated client held (sizes and label balance)."""
    privacy, fed = result.get("privacy"), result.get("federated")
    if privacy:
        eps = privacy.get("epsilon")
        st.markdown(f"🔒 **Differentially private**: ε = {eps:.2f} at δ = {privacy.get('delta')}"
                    if isinstance(eps, (int, float)) else "🔒 **Differentially private**")
        st.caption(md(f"{privacy.get('mechanism')}, {privacy.get('accountant')} accountant"
                      + (f", noise multiplier {privacy['noise_multiplier']}" if privacy.get("noise_multiplier") else "")
                      + f", clipping norm {privacy.get('max_grad_norm')}; the unit protected is "
                        f"{privacy.get('unit')}.") + " " + md(private.epsilon_explained()))
        st.warning(private.explanations_warning(), icon="⚠️")
    if fed:
        st.markdown(f"**Federated**: {fed['clients']} clients, {fed['rounds']} rounds, {fed['clients_per_round']} "
                    f"per round, {fed['local_epochs']:g} local epoch(s); partition {md(fed['partition'].get('kind'))}"
                    + (f" (α = {fed['partition']['alpha']:g})" if "alpha" in fed["partition"] else "")
                    + (f"; {fed['seconds_per_round']:.1f} s per round" if fed.get("seconds_per_round") else ""))
        rows = [{"client": c["client"], "name": c["name"], "texts": c["size"],
                 **{f"label {k}": v for k, v in c["labels"].items()}, "rounds trained": c["rounds_trained"],
                 **({"ε": c["epsilon"]} if "epsilon" in c else {})} for c in fed["per_client"]]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        st.caption("What each client held: sizes and label balance, never its texts.")
