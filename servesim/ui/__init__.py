"""The optional web app (`servesim ui`, the `ui` extra): plan.py's planner behind a Streamlit page.
logic.py holds everything testable without a browser; app.py is the page."""
