"""The Qt bridge of the model's undo sink: each :class:`~.model.commands.Command` becomes a ``QUndoCommand`` on the
window's ``QUndoStack`` (undo/redo menu text = the command's ``text``; merging through ``merge_id``)."""

from __future__ import annotations

from PySide6.QtGui import QUndoCommand, QUndoStack

from .model.commands import Command


class _QtCommand(QUndoCommand):
    def __init__(self, command: Command) -> None:
        super().__init__(command.text)
        self.command = command

    def redo(self) -> None:
        self.command.redo()

    def undo(self) -> None:
        self.command.undo()

    def id(self) -> int:
        return self.command.merge_id

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802
        return isinstance(other, _QtCommand) and self.command.merge_with(other.command)


class QtUndoSink:
    """:class:`~.model.commands.UndoSink` over a ``QUndoStack``."""

    def __init__(self, stack: QUndoStack) -> None:
        self.stack = stack

    def push(self, command: Command) -> None:
        self.stack.push(_QtCommand(command))

    def clear(self) -> None:
        self.stack.clear()

    def set_clean(self) -> None:
        self.stack.setClean()

    def reset_clean(self) -> None:
        self.stack.resetClean()

    def is_clean(self) -> bool:
        return self.stack.isClean()

    def index(self) -> int:
        return self.stack.index()
