"""rlhf-studio application layer: use cases, the CLI (`rlhf`) and the Streamlit UI."""
