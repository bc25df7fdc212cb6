"""Billing: the acts a consultation produces (``proposal``), the ledger entry written when it ends and each
correction (``service``), and the exports (``exports``)."""

from teleconsult.billing.proposal import BillingChoice, Proposal, propose
from teleconsult.billing.service import BillingService, MonthSummary

__all__ = ["BillingChoice", "BillingService", "MonthSummary", "Proposal", "propose"]
