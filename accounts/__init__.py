"""Sign-in: local and directory accounts, second factor, people and roles, sign-in protection."""
