"""Schema proposals page: what the evidence of recent files suggests changing in the schema."""

import streamlit as st

from frontend import schema_proposals as sp
from frontend.api_client import ApiError
from frontend.ui import client, show_api_error

st.title("Schema proposals")
st.caption(
    "Changes of schema.pbtxt proposed from the evidence of recent files (docs/schema.md). "
    "A curator approves or rejects each one with make or in Airflow; this page only shows them."
)
label = st.radio("Status", list(sp.STATUS_CHOICES), horizontal=True, key="proposals_status")
try:
    with client() as api:
        proposals = api.schema_proposals(status=sp.STATUS_CHOICES[label])
except ApiError as exc:
    show_api_error(exc)
    st.stop()

if not proposals:
    st.info("No schema proposal with this status.")
for p in proposals:
    with st.expander(f"#{p.id} [{p.status}] {p.title}", expanded=p.status == "proposed"):
        st.write(sp.evidence_sentence(p))
        st.dataframe(sp.evidence_frame(p), hide_index=True)
        st.code(p.diff, language="diff")
        st.markdown(sp.decision_sentence(p))
