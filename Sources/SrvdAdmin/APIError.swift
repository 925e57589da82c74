import HTTPTypes
import Hummingbird
import DNSZone
import Registration
import SrvdAPI

/// An API failure: the HTTP status, one sentence, and the field to blame if there is one.
/// Leaves as `{"error": ..., "field": ...}` (`ErrorBody`) through Hummingbird's
/// `HTTPResponseError`.
public struct APIError: HTTPResponseError, Equatable, Sendable {
    public var status: HTTPResponse.Status
    public var message: String
    public var field: String?
    /// The zone rule the request broke, when it broke one.
    public var rule: ZoneRule?

    public init(_ status: Int, _ message: String, field: String? = nil, rule: ZoneRule? = nil) {
        self.status = HTTPResponse.Status(code: status)
        self.message = message
        self.field = field
        self.rule = rule
    }

    /// The status of each kind of refusal: 422 for data that cannot be in the zone at all,
    /// 409 for data that clashes with what is there now, 507 when the disk is full
    /// (RFC 4918 §11.5), 503 when the store is busy.
    public init(_ e: RegistryError) {
        let status: Int
        switch e.kind {
        case .invalid: status = 400
        case .notFound: status = 404
        case .conflict: status = 409
        case .unprocessable: status = 422
        case .storeFull: status = 507
        case .storeBusy: status = 503
        case .storeFailed: status = 500
        }
        self.init(status, e.message, field: e.field, rule: e.rule)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        JSONErrorMiddleware<BasicRequestContext>.response(status: status, ErrorBody(error: message, field: field))
    }
}
