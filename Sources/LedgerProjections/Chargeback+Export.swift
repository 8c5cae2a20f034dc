public import Foundation
public import LedgerCore

extension Chargeback.Report {
    /// The report's sum in one currency: costs of the priced rows, idle shares received, both.
    public struct CurrencyTotal: Sendable, Equatable {
        public var currency: String
        public var cost: Decimal
        public var idleShare: Decimal
        public var total: Decimal { cost + idleShare }
    }

    /// Totals per currency, sorted by currency code: amounts in different currencies are never
    /// added together.
    public var totals: [CurrencyTotal] {
        var totals: [String: (Decimal, Decimal)] = [:]  // currency → (cost numerator, idle share)
        for row in rows {
            var t = totals[row.currency] ?? (0, 0)
            if !row.missingPrice { t.0 += row.costNumerator }
            t.1 += row.idleShare
            totals[row.currency] = t
        }
        return totals.keys.sorted().map { c in CurrencyTotal(currency: c, cost: totals[c]!.0 / Chargeback.msPerHour, idleShare: totals[c]!.1) }
    }

    /// The report as JSON: rows with GPU-hours and costs rounded half-even to cents (unpriced
    /// rows: cost null and `missingPrice`), and totals per currency.
    public var json: JSONValue {
        [
            "from": .string(from.description), "end": .string(end.description), "shareIdle": .bool(options.shareIdle),
            "groupBy": .array(options.groupBy.map { .string($0.rawValue) }),
            "rows": .array(rows.map(\.json)),
            "totals": .array(totals.map { t in
                ["currency": .string(t.currency), "cost": Money.json(t.cost), "idleShare": Money.json(t.idleShare), "total": Money.json(t.total)]
            }),
        ]
    }

    /// CSV with a header; costs to the cent, GPU-hours to 6 decimals, empty cost when unpriced.
    public var csv: String {
        var lines = ["team,gpuType,project,model,day,kind,chargeClass,currency,gpuHours,cost,idleShare,total,missingPrice"]
        for r in rows {
            let fields: [String] = [
                r.team ?? "", r.gpuType ?? "", r.project ?? "", r.model ?? "", r.day.map { Timestamp(milliseconds: $0).description.prefix(10).description } ?? "",
                r.kind.rawValue, r.chargeClass.rawValue, r.currency, Money.text(r.gpuHours, scale: 6), r.cost.map { Money.text($0) } ?? "",
                Money.text(r.idleShare), r.total.map { Money.text($0) } ?? "", r.missingPrice ? "true" : "false",
            ]
            lines.append(fields.map(csvField).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// FOCUS 1.2 cost and usage rows: one per team × gpuType × UTC day × charge kind (and class),
    /// `__idle__` as its own SubAccountId. Unpriced rows carry 0 with `x_MissingPrice` = true.
    public func focus(billingAccount: String = "platform-ledger") -> String {
        let byDay = Chargeback.group(lines, by: [.team, .gpuType, .day])
        let columns = [
            "BilledCost", "BillingAccountId", "BillingAccountName", "BillingAccountType", "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart",
            "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart",
            "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountQuantity", "CommitmentDiscountStatus",
            "CommitmentDiscountType", "CommitmentDiscountUnit", "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice",
            "EffectiveCost", "InvoiceId", "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory", "PricingCurrency",
            "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice", "PricingQuantity", "PricingUnit",
            "ProviderName", "PublisherName", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceName",
            "ServiceSubcategory", "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName", "SubAccountType", "Tags",
            "AvailabilityZone", "CapacityReservationId", "CapacityReservationStatus",
            "x_ChargeKind", "x_GpuType", "x_IdleShare", "x_MissingPrice",
        ]
        var out = [columns.joined(separator: ",")]
        for r in byDay {
            guard let day = r.day, let gpuType = r.gpuType, let team = r.team else { continue }
            let dayStart = Timestamp(milliseconds: day)
            let chargeStart = Timestamp(milliseconds: max(day, from.milliseconds))
            let chargeEnd = Timestamp(milliseconds: min(day + Chargeback.dayMs, end.milliseconds))
            let (monthStart, monthEnd) = month(of: dayStart)
            let cost = options.shareIdle ? (r.total ?? 0) : (r.cost ?? 0)
            let hours = r.gpuHours
            let unitPrice: Decimal? = r.cost.flatMap { c in hours == 0 ? nil : Money.rounded(c / hours, scale: 6) }
            let description: String
            switch r.kind {
            case .usage: description = "\(gpuType) GPU-hours of training allocations"
            case .idle: description = "Idle \(gpuType) capacity of the training pool"
            case .inference: description = "\(gpuType) GPU-hours of inference serving"
            }
            let tags: JSONValue = ["gpuType": .string(gpuType), "chargeKind": .string(r.kind.rawValue)]
            let values: [String] = [
                Money.text(cost), billingAccount, "Platform Ledger GPU platform", "Platform", r.currency, focusTime(monthEnd), focusTime(monthStart),
                "Usage", r.chargeClass == .correction ? "Correction" : "", description, "Usage-Based", focusTime(chargeEnd), focusTime(chargeStart),
                "", "", "", "", "", "", "", Money.text(hours, scale: 6), "GPU-Hours", Money.text(cost), unitPrice.map { Money.text($0, scale: 6) } ?? "",
                Money.text(cost), "", "Platform Ledger", Money.text(cost), unitPrice.map { Money.text($0, scale: 6) } ?? "", "Standard", r.currency,
                unitPrice.map { Money.text($0, scale: 6) } ?? "", Money.text(cost), unitPrice.map { Money.text($0, scale: 6) } ?? "",
                r.chargeClass == .correction ? "" : Money.text(hours, scale: 6), r.chargeClass == .correction ? "" : "GPU-Hours",
                "Platform Ledger", "Platform Ledger", "", "", "gpu-pool/\(gpuType)", "\(gpuType) GPU pool", "GPU", "AI and Machine Learning", "GPU Compute",
                "AI Platforms", "gpu-\(gpuType)", "GPU-Hours", "", "gpu-\(gpuType)-hourly", team, team == Chargeback.idleTeam ? "Idle capacity" : "Team \(team)", "Team",
                tags.description, "", "", "",
                r.kind.rawValue, gpuType, Money.text(r.idleShare), r.missingPrice ? "true" : "false",
            ]
            out.append(values.map(csvField).joined(separator: ","))
        }
        return out.joined(separator: "\n") + "\n"
    }

    func month(of day: Timestamp) -> (Timestamp, Timestamp) {
        let text = day.description
        let year = Int(text.prefix(4))!
        let month = Int(text.dropFirst(5).prefix(2))!
        let start = Timestamp(String(format4(year)) + "-" + two(month) + "-01T00:00:00.000Z")!
        let next = month == 12 ? Timestamp(format4(year + 1) + "-01-01T00:00:00.000Z")! : Timestamp(format4(year) + "-" + two(month + 1) + "-01T00:00:00.000Z")!
        return (start, next)
    }

    func format4(_ n: Int) -> String { String(repeating: "0", count: max(0, 4 - String(n).count)) + String(n) }
    func two(_ n: Int) -> String { n < 10 ? "0\(n)" : String(n) }

    /// FOCUS date-times: ISO 8601 in UTC, `YYYY-MM-DDTHH:mm:ssZ`.
    func focusTime(_ t: Timestamp) -> String { String(t.description.prefix(19)) + "Z" }
}

extension Chargeback.Row {
    public var json: JSONValue {
        var o: JSONObject = [
            "kind": .string(kind.rawValue), "chargeClass": .string(chargeClass.rawValue), "currency": .string(currency),
            "gpuHours": .number(NSDecimalNumber(decimal: Money.rounded(gpuHours, scale: 6)).doubleValue),
            "cost": cost.map { Money.json($0) } ?? .null, "missingPrice": .bool(missingPrice),
            "idleShare": Money.json(idleShare), "total": total.map { Money.json($0) } ?? .null,
        ]
        if let team { o["team"] = .string(team) }
        if let gpuType { o["gpuType"] = .string(gpuType) }
        if let project { o["project"] = .string(project) }
        if let model { o["model"] = .string(model) }
        if let day { o["day"] = .string(String(Timestamp(milliseconds: day).description.prefix(10))) }
        return .object(o)
    }
}

func csvField(_ s: String) -> String {
    guard s.contains(",") || s.contains("\"") || s.contains("\n") else { return s }
    return "\"" + s.replacing("\"", with: "\"\"") + "\""
}
