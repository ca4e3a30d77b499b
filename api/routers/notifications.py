"""Placeholder: replaced by the module's owner while the case store is being built."""

from fastapi import APIRouter

router = APIRouter()
