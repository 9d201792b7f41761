"""The Streamlit web UI: predict one application, predict a CSV, browse past predictions."""
