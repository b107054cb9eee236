"""Text from DICOM files, PACS databases and exceptions is data, never markup.

Streamlit renders Markdown in titles, messages, captions, metric values, expander and
radio labels: a PatientName ``![x](http://host/beacon.png)`` would make every browser
that opens the patient fetch that URL, a description with a link would be clickable,
``:smile:`` would become an emoji and ``$x$`` a formula. :func:`md` is the one way data
enters such an element: every ASCII punctuation character is backslash-escaped (which
CommonMark shows literally, and which stops GitHub's bare-URL links and Streamlit's
``:directive:``, emoji and LaTeX detection), control characters become spaces. GitHub's
bare links are found in the text after escapes are undone, so a WORD JOINER (U+2060,
invisible) goes where they would start: after ``http``/``https``/``www`` and ``@``.

Elements that show text as it is (``st.dataframe`` cells, ``st.code``, ``st.text``,
``st.selectbox`` options) take data unescaped.
"""

from __future__ import annotations

import re

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BARE_LINK = re.compile(r"(?i)(https?(?=:)|www(?=\.)|@)")  # where a bare link or e-mail starts
WORD_JOINER = "\u2060"


def md(value: object) -> str:
    """``value`` as Markdown that shows exactly its text (``None`` shows nothing)."""
    text = _CONTROL.sub(" ", "" if value is None else str(value))
    text = _BARE_LINK.sub(lambda m: m.group() + WORD_JOINER, text)
    return _PUNCTUATION.sub(r"\\\1", text)
