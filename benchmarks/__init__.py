"""The zoo's evaluation side: results files (results.py), the runner (run.py), the leaderboard (leaderboard/).

Not part of the installed package; import it from a source checkout (``eee-zoo benchmark`` does that).
"""
