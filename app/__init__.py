"""todo-chat: the streaming backend of an AI todo-list assistant."""
