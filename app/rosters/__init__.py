"""Read side: qualification rosters, exports, ready-made lists, indicators and the public register."""
