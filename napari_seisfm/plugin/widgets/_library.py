"""The "Survey library" box of the Click-to-map dock: "where else does this occur?" across every cube of a
usearch library built with ``seisfm library add`` (search.library), one row per body, the seabed band left out
unless ticked; a row opens its cube (absolute path in the library) at that place."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import FileEdit
from qtpy.QtWidgets import QCheckBox, QGroupBox, QHBoxLayout, QListWidget, QPushButton, QVBoxLayout

from ...errors import SeisfmError
from . import _notify


class LibraryBox(QGroupBox):
    def __init__(self, dock):
        """``dock``: the Click-to-map dock (its viewer, session and worker helper)."""
        super().__init__("Survey library")
        self.dock = dock
        self.viewer = dock.viewer
        self.matches: list = []
        self.library = FileEdit(
            mode="d",
            label="library",
            tooltip="a folder made by `seisfm library add STORE...` (default: seisfm-library beside the feature store)",
        )
        self.search_button = QPushButton("Search library")
        self.search_button.setToolTip("the positive clicks' mean vector against every cube of the library; one row per body")
        self.seabed = QCheckBox("seabed band")
        self.seabed.setToolTip(
            "also list places in the cubes' seabed bands (the water, the first strong reflector and "
            "one grid step under it); a click in the band searches it anyway"
        )
        self.results = QListWidget()
        self.results.setMaximumHeight(110)
        layout = QVBoxLayout(self)
        layout.addWidget(self.library.native)
        row = QHBoxLayout()
        row.addWidget(self.search_button)
        row.addWidget(self.seabed)
        layout.addLayout(row)
        layout.addWidget(self.results)
        self.search_button.clicked.connect(lambda: self.search())
        self.results.itemActivated.connect(lambda item: self.open_match(self.results.row(item)))

    def _library_path(self) -> Path:
        from ...search.library import default_library

        text = str(self.library.line_edit.value).strip()
        if text:
            return Path(text).expanduser()
        return default_library(self.dock.session.features_path)

    def search(self, top: int = 20):
        """The best places of the positive clicks in every cube of the library, one per body, in a worker."""
        session = self.dock.session
        try:
            if session is None:
                raise SeisfmError("load a feature store first")
            if not session.positives:
                raise SeisfmError("add a positive click first: the library is searched with the positive clicks")
            library = self._library_path()
            if not library.exists():
                raise SeisfmError(f"{library}: no survey library there; build one with `seisfm library add STORE...`")
        except SeisfmError as exc:
            _notify.show_error(str(exc))
            return None
        self.dock.say(f"searching {library} ...")
        return self.dock.jobs.start(
            _search, library, session.features, list(session.positives), top, self.seabed.isChecked(), on_done=self._show
        )

    def _show(self, found):
        matches, note = found
        self.matches = list(matches)
        self.results.clear()
        for m in self.matches:
            where = m.survey or m.cube_index
            body = f"  ({m.hits} hits)" if m.hits > 1 else ""
            self.results.addItem(
                f"{m.rank}. {Path(m.store).stem}  il {where[0]:g} xl {where[1]:g} t {where[2]:g}  {m.score:.3f}{body}"
            )
        cubes = len({m.store for m in self.matches})
        self.dock.say(f"library: {len(self.matches)} places in {cubes} cube(s) ({note}); activate a row to go there")

    def open_match(self, i: int):
        """Go to match ``i``: in this cube, move there; in another, open that cube first (its feature store is
        then one Load away)."""
        from .. import view

        if not 0 <= i < len(self.matches):
            return None
        m = self.matches[i]
        session = self.dock.session
        here = session is not None and Path(m.store).resolve() == Path(session.features_path or "").resolve()
        if not here:
            try:
                cube = m.cube  # absolute, or as an older store recorded it when found nowhere
                if not cube or not Path(cube).is_absolute() or not Path(cube).exists():
                    raise SeisfmError(f"{m.store}: its cube ({cube or 'unknown'}) is not on this machine")
                layers = self.viewer.open(cube, plugin="napari-seisfm")
            except SeisfmError as exc:
                _notify.show_error(str(exc))
                return None
            self.dock.cube.value = layers[0]
            self.dock.store.setCurrentText(str(m.store))
        if m.survey is not None:
            survey = view.survey_of(self.dock.cube.value) if self.dock.cube.value is not None else None
            self.viewer.dims.set_point(list(range(3)), list(view.to_world(self.viewer, m.survey, survey)))
        return m


def _search(library, features, positives, top: int, seabed: bool):
    """The worker's call: the library's places for the clicks, and the line saying what was left out."""
    from ...search.library import Library, describe_search, search_library

    lib = Library.open(library)
    matches = search_library(lib, features, positives, top=top, seabed=seabed)
    return matches, describe_search(lib.last, "tick 'seabed band' to list them")
