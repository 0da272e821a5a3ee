"""The editor model: document state, actions, the job queue, panes and typed settings, **without Qt**.

Widgets (:mod:`frgd_studio.panels`, :mod:`frgd_studio.main_window`) render this state and call its actions; the Qt
layer only supplies the glue (:mod:`frgd_studio.undo` wraps each :class:`~.commands.Command` in a ``QUndoCommand``,
:mod:`frgd_studio.qtpost` delivers job callbacks on the GUI thread). Modules: :mod:`.events` (observer ``Event``),
:mod:`.document`, :mod:`.commands`, :mod:`.jobs`, :mod:`.settings`, :mod:`.backend` (torch adapters), :mod:`.panes`,
:mod:`.editor` (``EditorModel``).
"""
