"""LoRA's options as four inputs (rank, alpha, dropout, target modules), shared by the Train page
(text reward models) and the Classifiers page; their values as the options a job takes."""

from __future__ import annotations

from typing import Any

import streamlit as st


def lora_inputs(prefix: str, *, placeholder: str = "query,value") -> None:
    """Rank, alpha, dropout and target modules in one row; session keys start with ``prefix``."""
    cols = st.columns(4)
    cols[0].number_input("LoRA rank", min_value=1, max_value=256, value=8, key=f"{prefix}-rank")
    cols[1].number_input("LoRA alpha", min_value=0.5, max_value=1024.0, value=16.0, key=f"{prefix}-alpha")
    cols[2].number_input("LoRA dropout", min_value=0.0, max_value=0.9, value=0.0, step=0.05, key=f"{prefix}-dropout")
    cols[3].text_input(
        "Target modules",
        key=f"{prefix}-t",
        placeholder=placeholder,
        help="Comma-separated names of the backbone's layers that get adapters (e.g. query,key,value,dense); "
        "empty: the default.",
    )


def lora_values(prefix: str) -> dict[str, Any]:
    """What the inputs of ``prefix`` hold: rank, alpha, dropout and, when typed, target_modules."""
    targets = [t.strip() for t in str(st.session_state.get(f"{prefix}-t") or "").split(",") if t.strip()]
    values: dict[str, Any] = {
        "rank": int(st.session_state.get(f"{prefix}-rank", 8)),
        "alpha": float(st.session_state.get(f"{prefix}-alpha", 16.0)),
        "dropout": float(st.session_state.get(f"{prefix}-dropout", 0.0)),
    }
    if targets:
        values["target_modules"] = targets
    return values
