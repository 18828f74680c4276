"""Showing data as text: names, file contents and error messages are never run as markup.

Streamlit renders Markdown (with its own extensions: ``:emoji:`` shortcodes, ``:color[...]``
directives, ``:material/icon:`` icons, ``$math$``) in titles, alerts, captions and widget
labels. Anything that comes from a URL, a form, a file or the database goes through
:func:`md` before it is put into such a string, so ``![x](http://host/x.png)`` shows as
those characters and makes the browser fetch nothing. Messages shown in the browser also
lose the server's data folder path (:func:`public`).
"""

from __future__ import annotations

import re
import string

import streamlit as st

from app.config import Studio

_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
_ZERO_WIDTH_SPACE = "\u200b"
_SHORTCODE_START = re.compile(r":(?=[\w+-])")


def md(text: object) -> str:
    """``text`` as Markdown that renders to exactly these characters.

    Every ASCII punctuation character is backslash-escaped (CommonMark allows it for all of
    them), and a zero-width space goes between a colon and a word character, so that
    Streamlit's ``:name:`` shortcodes, ``:color[...]`` directives and ``:material/...:``
    icons cannot form (a colon before a space, as in prose, stays as it is). Line breaks
    become spaces.
    """
    text = _SHORTCODE_START.sub(":" + _ZERO_WIDTH_SPACE, str(text))
    escaped = _PUNCTUATION.sub(r"\\\1", text)
    return re.sub(r"\s*[\r\n]+\s*", " ", escaped)


def public(studio: Studio, message: object) -> str:
    """``message`` without server paths: an error's own ``public`` text where it has one (the
    label store's errors), and the data folder's path taken out (paths inside it stay relative)."""
    text = str(getattr(message, "public", message))
    folder = str(studio.settings.data_dir)
    return text.replace(folder + "/", "").replace(folder, "the data folder")


def error(studio: Studio, message: object) -> None:
    """An error box with ``message`` as plain text (no markup, no server paths)."""
    st.error(md(public(studio, message)), icon=":material/error:")


def warning(studio: Studio, message: object) -> None:
    """A warning box with ``message`` as plain text (no markup, no server paths)."""
    st.warning(md(public(studio, message)), icon=":material/warning:")
