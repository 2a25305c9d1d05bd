"""Viewer logic without Qt: view state, the stack display mapping, measurements, keymap checks.

Kept out of the widgets so it is tested without a window (SPEC section 7; ARCHITECTURE "Things to avoid" 2).
"""
