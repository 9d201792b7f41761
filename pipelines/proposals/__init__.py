"""The curator's loop (issue 16, docs/schema.md): evidence from judged files becomes proposed
changes of schema.pbtxt, which a person approves or rejects in one action."""
