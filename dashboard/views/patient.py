"""Patient page: demographics, the same person on other NAS devices, studies -> series ->
files with their folders as the workstation sees them, and image previews."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from dash_context import context, fmt_date, fmt_name, show_error
from dash_search_state import SHOWN_KEY
from dash_text import md

from nasindex.errors import NasIndexError
from nasindex.preview import THUMB_SIZE, THUMBS_PER_PAGE, VIEW_SIZE, WINDOWS, PreviewError
from nasindex.search import PatientHit, SeriesNode, StudyNode

THUMB_COLUMNS = 6


def _back_to_results() -> None:
    """A link to the search this patient was opened from (the browser's Back does the
    same); none for a patient opened from a link."""
    last = st.session_state.get(SHOWN_KEY)
    if last:
        st.page_link("views/search.py", label="Back to the results", query_params=last,
                     icon=":material/arrow_back:")


def _header(record: PatientHit) -> None:
    st.title(md(fmt_name(record.patient_name)) or "(no name)", anchor=False)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Patient ID", md(record.patient_id))
    c2.metric("Born", md(fmt_date(record.birth_date)) or "unknown")
    c3.metric("Sex", md(record.sex) or "unknown")
    c4.metric("Studies", len(record.studies))


def _choose_record(records: list[PatientHit], reason: str | None) -> PatientHit:
    if len(records) == 1:
        return records[0]
    st.info(f"**Found on {len(records)} NAS devices.** {md(reason)}", icon=":material/link:")
    st.dataframe(pd.DataFrame([{
        "NAS": r.nas, "Patient ID": r.patient_id, "Name": fmt_name(r.patient_name),
        "Born": fmt_date(r.birth_date), "Studies": len(r.studies),
        "Latest study": fmt_date(r.studies[0].date) if r.studies else ""} for r in records]),
        hide_index=True, width="stretch")
    labels = [md(f"{r.nas} · {r.patient_id}") for r in records]  # radio labels: Markdown
    pick = st.radio("Studies and images of", range(len(records)), horizontal=True,
                    format_func=labels.__getitem__, key="record")
    return records[pick]


def _studies(tree: list[StudyNode]) -> list[tuple[StudyNode, SeriesNode]]:
    st.subheader("Studies")
    choices = []
    for i, study in enumerate(tree):
        label = (f"{fmt_date(study.date) or 'no date'} — {study.description or '(no description)'}"
                 f" — {', '.join(study.modalities)} — {len(study.series)} series, "
                 f"{study.instances} images")
        with st.expander(md(label), expanded=i == 0):
            st.caption(f"Study folder (accession {md(study.accession) or '—'})")
            st.code(study.folder, language=None)
            st.dataframe(pd.DataFrame([{
                "Series": s.number, "Modality": s.modality or "", "Description": s.description
                or "", "Images": s.instances, "Folder": s.folder} for s in study.series]),
                hide_index=True, width="stretch")
        choices += [(study, s) for s in study.series]
    return choices


def _series_label(choice: tuple[StudyNode, SeriesNode]) -> str:
    study, s = choice
    return (f"{fmt_date(study.date)} {study.description or ''} · series {s.number or '?'} "
            f"{s.modality or ''} {s.description or ''} ({s.instances} images)")


def _step(key: str, delta: int, count: int) -> None:
    st.session_state[key] = min(max(st.session_state.get(key, 1) + delta, 1), count)


def _go(key: str, number: int) -> None:
    st.session_state[key] = number


def _preview(nas: str, study: StudyNode, series: SeriesNode) -> None:
    try:
        files = ctx.access.series_files(ctx.user, nas, series.series_uid)
    except NasIndexError as exc:
        show_error(exc, "The images cannot be shown")
        return
    if not files:
        st.warning("Every file of this series is missing from the NAS (see Health).")
        return
    st.caption("Series folder")
    st.code(series.folder, language=None)
    presets = list(WINDOWS)
    c1, c2 = st.columns([3, 2])
    preset = c1.radio("Window", presets, horizontal=True, key="preset",
                      index=0 if (series.modality or "").upper() == "CT" else presets.index("auto"),
                      format_func=_preset_label)
    key = f"slice:{series.series_uid}"
    count = len(files)
    if count > 1:
        c2.slider("Slice", 1, count, key=key, value=st.session_state.get(key, 1))
    slice_no = st.session_state.get(key, 1) if count > 1 else 1
    current = files[slice_no - 1]
    view, thumbs = st.columns([2, 3])
    with view:
        b1, b2 = st.columns(2)
        b1.button("Previous slice", on_click=_step, args=(key, -1, count), width="stretch",
                  icon=":material/arrow_upward:", disabled=slice_no <= 1, key="prev_slice")
        b2.button("Next slice", on_click=_step, args=(key, 1, count), width="stretch",
                  icon=":material/arrow_downward:", disabled=slice_no >= count,
                  key="next_slice")
        try:
            st.image(_image(series, current, preset, VIEW_SIZE),
                     caption=f"Slice {slice_no} of {count}", width="stretch")
        except (PreviewError, NasIndexError) as exc:
            st.warning(md(exc), icon=":material/broken_image:")
        st.code(current["display_path"], language=None)
    with thumbs:
        _thumbnails(series, files, preset, key, slice_no)
    with st.expander(f"Files of this series ({count})"):
        st.dataframe(pd.DataFrame([{"#": f["instance_number"], "Path": f["display_path"],
                                    "Format": f["format"], "Bytes": f["size"]} for f in files]),
                     hide_index=True, width="stretch")


def _preset_label(name: str) -> str:
    limits = WINDOWS[name]
    return name if limits is None else f"{name} (L {limits[0]:g} / W {limits[1]:g})"


def _image(series: SeriesNode, file: dict, preset: str, size: int) -> bytes:
    """One file of the series drawn through the access layer (scope check, audit)."""
    return ctx.access.preview(ctx.user, record.nas, series.series_uid, file["rel_path"],
                              preset, size)


def _thumbnails(series: SeriesNode, files: list[dict], preset: str, key: str,
                slice_no: int) -> None:
    start = (slice_no - 1) // THUMBS_PER_PAGE * THUMBS_PER_PAGE
    page = files[start:start + THUMBS_PER_PAGE]
    st.caption(f"Slices {start + 1}–{start + len(page)} of {len(files)}")
    cols = st.columns(THUMB_COLUMNS)
    for i, f in enumerate(page):
        number = start + i + 1
        with cols[i % THUMB_COLUMNS]:
            try:
                st.image(_image(series, f, preset, THUMB_SIZE), width="stretch")
            except (PreviewError, NasIndexError) as exc:
                st.caption(f"⚠ {md(exc)}")
            st.button(f"{number}", key=f"thumb:{number}", on_click=_go, args=(key, number),
                      type="primary" if number == slice_no else "secondary", width="stretch")


ctx = context()
nas, patient_id = st.query_params.get("nas"), st.query_params.get("id")
if not nas or not patient_id:
    st.title("Patient")
    st.info("Choose a patient on the Search page.", icon=":material/search:")
    st.page_link("views/search.py", label="Go to Search", icon=":material/search:")
    st.stop()
_back_to_results()
try:
    person = ctx.access.patient(ctx.user, nas, patient_id)
    if person is not None:
        _header(person.records[0])
        record = _choose_record(person.records, person.linked_because)
        tree = ctx.access.study_tree(ctx.user, record.nas, record.patient_id)
except NasIndexError as exc:  # refused (NAS scope), or the audit trail cannot be written
    st.title("Patient")
    show_error(exc, "This patient cannot be shown")
    st.stop()
if person is None:
    st.title("Patient")
    st.warning(f"No patient with ID {md(repr(patient_id))} on NAS {md(repr(nas))} in the "
               "index. It may have been re-indexed under another ID; search again.")
    st.page_link("views/search.py", label="Go to Search", icon=":material/search:")
    st.stop()
if not tree:
    st.info("No studies of this patient are indexed on this NAS.")
    st.stop()
# Images first (what a clinician came for), then every study with its folders.
images = st.container()
choices = _studies(tree)
with images:
    st.subheader("Images")
    picked = st.selectbox("Series", range(len(choices)), key="series",
                          format_func=lambda i: _series_label(choices[i]))
    _preview(record.nas, *choices[picked])
