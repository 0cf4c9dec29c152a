"""Drills (issue 7; domain.md §5, 第十五條 to 第二十四條): scenarios injected through
the real pipeline, their plan, and the drill report. See docs/drills.md."""
