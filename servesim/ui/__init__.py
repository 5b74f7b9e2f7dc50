"""The optional web app (`servesim ui`, the `ui` extra): plan.py's planner behind a Streamlit page.
logic.py holds everything testable without a browser; app.py is the page."""

from servesim._face import lazy_face

_EXPORTS = {"APP_PATH": "servesim.ui.logic"}  # the Streamlit page `servesim ui` starts
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
