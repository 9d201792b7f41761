"""Predict page: a form for one record built from the model's features, and a CSV upload."""

import hashlib

import streamlit as st

from frontend import batch_results, chunked_sending, form_fields, upload_checks
from frontend.api_client import ApiError
from frontend.ui import client, model_info_or_stop, problems_table, settings, show_api_error

st.title(f"Predict {settings().subject}")
info = model_info_or_stop()
positive = info.positive_class
st.caption(
    f"Model {info.version}, trained {info.trained_at or 'at an unknown time'} with schema "
    f"{info.trained_schema_version or '(not recorded)'}. "
    f"It predicts `{info.target}`; the probability shown is that of class {positive}."
    + (f" Values are checked against schema {info.schema_version}." if info.schema_version else "")
)
if info.trained_schema_version and info.schema_version != info.trained_schema_version:
    st.info(
        "The schema changed since the model was trained: values approved since then are "
        "accepted, and their predictions are marked as holding values the model never saw.",
        icon=":material/new_releases:",
    )


def _class_label(value: str) -> str:
    if value == info.positive_class:
        return f"{value} (positive class)"
    if value == info.negative_class:
        return f"{value} (negative class)"
    return value


# --- one record -------------------------------------------------------------------------------
st.subheader(f"One {settings().record_name}")
with st.form("predict_one_form"):
    columns = st.columns(3)
    values = {}
    for i, feature in enumerate(info.features):
        hint = form_fields.range_hint(feature)
        help_text = f"{feature.description}\n\nAllowed: {hint}".strip()
        with columns[i % len(columns)]:
            if feature.is_categorical:
                values[feature.name] = st.selectbox(
                    feature.name,
                    feature.values,
                    index=None,
                    placeholder="Choose a value",
                    help=help_text,
                    key=f"predict_one_{feature.name}",
                )
            else:
                values[feature.name] = st.number_input(
                    feature.name,
                    value=None,
                    placeholder=hint,
                    help=help_text,
                    key=f"predict_one_{feature.name}",
                    **form_fields.number_widget_args(feature),
                )
    submitted = st.form_submit_button("Predict", type="primary")

if submitted:
    record, missing = form_fields.form_record(values, info.features)
    st.session_state["predict_one_result"] = None
    if missing:
        st.error(f"Fill in every field first; empty: {', '.join(missing)}.")
    else:
        try:
            with client() as api, st.spinner("Predicting..."):
                st.session_state["predict_one_result"] = api.predict([record]).predictions[0]
        except ApiError as exc:
            show_api_error(exc)

one = st.session_state.get("predict_one_result")
if one is not None:
    probability = (
        ""
        if one.probability is None
        else f", probability of class {positive}: {one.probability:.2f}"
    )
    st.success(f"Prediction: {_class_label(one.prediction)}{probability}. Stored as #{one.id}.")
    if one.unseen_features:
        st.warning(
            f"The model never saw this value of {', '.join(one.unseen_features)} in training: "
            "the prediction has less evidence behind it.",
            icon=":material/help:",
        )

# --- a CSV file -------------------------------------------------------------------------------
st.subheader("A CSV file")
s = settings()
st.caption(
    f"One {s.record_name} per row, one column per feature: {', '.join(f.name for f in info.features)}. "
    f"Up to {s.max_upload_mb} MB. Every value is checked before anything is sent: rows with "
    "invalid values are listed, and the valid rows can be predicted without them."
)
uploaded = st.file_uploader(
    "CSV file",
    type=["csv"],
    key="predict_csv_file",
    max_upload_size=s.max_upload_mb,
)

if uploaded is not None:
    data = uploaded.getvalue()
    file_id = f"{uploaded.name}:{hashlib.sha256(data).hexdigest()}"
    # Parsing a large file takes a second: do it once per file, not on every rerun.
    if st.session_state.get("predict_csv_parsed_id") != file_id:
        try:
            with st.spinner(f"Checking {uploaded.name}..."):
                parsed = upload_checks.parse_upload(
                    data, info.features, max_bytes=s.max_upload_bytes
                )
            error = None
        except upload_checks.CsvError as exc:
            parsed, error = None, exc
        st.session_state["predict_csv_parsed_id"] = file_id
        st.session_state["predict_csv_parsed"] = (parsed, error)
        st.session_state["predict_csv_invalid_csv"] = (
            upload_checks.invalid_rows_csv(parsed) if parsed and not parsed.all_valid else b""
        )
    parsed, error = st.session_state["predict_csv_parsed"]
    # What the reader normalised (a skipped hint line, a dropped repeated column...).
    for note in (error or parsed).notes:
        st.info(f"While reading the file: {note}.")

    if error is not None:
        st.error(f"{uploaded.name}: {error}")
        problems_table(upload_checks.problems_frame(error.problems))
    else:
        invalid_rows = parsed.invalid_rows
        if parsed.all_valid:
            st.write(f"**{uploaded.name}**: {parsed.rows} rows, all valid.")
        else:
            st.warning(
                f"**{uploaded.name}**: {len(invalid_rows)} of {parsed.rows} rows have invalid "
                f"values and cannot be predicted. {upload_checks.describe_problems(parsed.problems)}",
                icon=":material/rule:",
            )
            st.caption(upload_checks.ROW_NUMBERING)
            problems_table(parsed.problems)
            st.download_button(
                f"Download the {len(invalid_rows)} invalid rows with their reasons (CSV)",
                data=st.session_state["predict_csv_invalid_csv"],
                file_name=f"invalid-rows-{uploaded.name}",
                mime="text/csv",
                key="predict_csv_invalid_download",
                on_click="ignore",
            )
        if not parsed.records:
            st.error("No row is valid: nothing can be predicted. Fix the file and upload it again.")
            st.stop()
        # The file is sent only after a press of this button, never on a rerun (the uploader
        # keeps the file: streamlit#7097), and only once: the job lives in session_state.
        # With invalid rows, only the valid ones are sent, and only on this explicit press.
        job = st.session_state.get("predict_csv_job")
        outcome = job[1] if job is not None and job[0] == file_id else None
        label = (
            f"Predict {parsed.rows} rows"
            if parsed.all_valid
            else f"Predict the {len(parsed.records)} valid rows"
        )
        if outcome is None and st.button(label, type="primary", key="predict_csv_send"):
            st.session_state["predict_csv_job"] = (
                file_id,
                chunked_sending.BatchOutcome(total=len(parsed.records), rows=parsed.valid_rows),
            )
            st.rerun()  # the next run, without this button, finds the job pending and sends it

        # Pending also after a rerun that stopped the sending halfway (any click on the page
        # does): it resumes at the first row not stored.
        if outcome is not None and outcome.pending:
            bar = st.progress(
                outcome.sent / outcome.total, text=f"Sent {outcome.sent} of {outcome.total} rows"
            )

            def progress(done: int, total: int) -> None:
                bar.progress(done / total, text=f"Sent {done} of {total} rows")

            with client() as api:
                chunked_sending.send_in_chunks(
                    api,
                    parsed.records,
                    chunk_size=s.batch_records,
                    on_progress=progress,
                    outcome=outcome,
                )
            bar.empty()

        if outcome is not None:
            if outcome.error:
                st.error(outcome.error)
                problems_table(upload_checks.problems_frame(outcome.problems))
            if outcome.retryable and st.button(
                f"Send the remaining {outcome.total - outcome.sent} rows",
                type="primary",
                key="predict_csv_resume",
            ):
                outcome.retry()
                st.rerun()  # the next run finds the job pending and resumes it
            if outcome.predictions:
                results = batch_results.results_frame(parsed, outcome)
                summary = batch_results.class_summary(
                    [p.prediction for p in outcome.predictions], info.classes, positive
                )
                if outcome.complete:
                    st.success(f"Predicted {len(outcome.predictions)} rows.")
                unseen_note = batch_results.unseen_summary(outcome.predictions)
                if unseen_note:
                    st.warning(
                        f"{unseen_note}. The column `{batch_results.UNSEEN}` names them.",
                        icon=":material/help:",
                    )
                if invalid_rows:
                    st.info(
                        f"{len(invalid_rows)} rows were not predicted because of invalid values "
                        f"({batch_results.row_list(invalid_rows)}). The results keep every row "
                        "of the file: `status` and `reason` say why a row has no prediction."
                    )
                st.markdown("**Predictions per class**")
                rows = summary.to_dict("records")
                for column, row in zip(st.columns(len(rows)), rows, strict=True):
                    meaning = f" ({row['meaning']})" if row["meaning"] else ""
                    column.metric(
                        f"class {row['class']}{meaning}",
                        row["count"],
                        f"{row['share']:.0%} of the predicted rows",
                        delta_color="off",
                        delta_arrow="off",
                    )
                st.dataframe(
                    results,
                    width="stretch",
                    column_config={"probability": st.column_config.NumberColumn(format="%.3f")},
                )
                st.download_button(
                    "Download the results (CSV)",
                    data=batch_results.to_csv_bytes(results),
                    file_name=f"predictions-{uploaded.name}",
                    mime="text/csv",
                    key="predict_csv_download",
                    on_click="ignore",  # the results stay on the page; no rerun needed
                )
