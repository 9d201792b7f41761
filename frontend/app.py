"""Entry point of the web UI: `streamlit run frontend/app.py` (what `make up` starts)."""

import streamlit as st

from frontend.ui import settings

st.set_page_config(
    page_title=settings().app_title, page_icon=":material/online_prediction:", layout="wide"
)

page = st.navigation(
    [
        st.Page("app_pages/predict.py", title="Predict", icon=":material/online_prediction:"),
        st.Page(
            "app_pages/past_predictions.py", title="Past predictions", icon=":material/history:"
        ),
        st.Page("app_pages/schema_proposals.py", title="Schema proposals", icon=":material/rule:"),
    ]
)
st.sidebar.caption(f"Model API: {settings().api_url}")
page.run()
