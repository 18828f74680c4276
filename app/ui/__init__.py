"""Streamlit UI of rlhf-studio. Pages stay thin: read widgets, call one use case, render."""
