import Foundation
import HTTPTypes
import Hummingbird
import Registration

/// Which `ScopedRequest` each admin API route is: the one table the bearer check consults
/// to judge a scoped token (`TokenScope.check` has the rules). A route not named here needs
/// an admin token, so a route added later is closed to member tokens until it is listed.
enum Scopes {
    /// One member's routes, as Hummingbird names the matched endpoint.
    static let memberRoutes: Set<String> = [
        "GET /v1/zones/{zone}/members/{name}",
        "PUT /v1/zones/{zone}/members/{name}",
        "DELETE /v1/zones/{zone}/members/{name}",
        "POST /v1/zones/{zone}/members/{name}/renew",
    ]
    /// The reads `srvctl wait` (and `srvctl run --wait`) makes, which a member's boot script
    /// needs: what they show is in DNS already.
    static let memberListing = "GET /v1/zones/{zone}/members"
    static let status = "GET /v1/status"

    /// The request a route is, with its zone and name percent-decoded as the handler
    /// decodes them (`AdminAPI.parameter`).
    static func request(method: HTTPRequest.Method, endpoint: String?, parameters: Parameters) -> ScopedRequest {
        request(method: method, endpoint: endpoint, zone: parameters.get("zone"), name: parameters.get("name"))
    }

    static func request(method: HTTPRequest.Method, endpoint: String?, zone: String?, name: String?) -> ScopedRequest {
        let route = "\(method.rawValue) \(endpoint ?? "?")"
        func decoded(_ s: String) -> String { s.removingPercentEncoding ?? s }
        if memberRoutes.contains(route), let zone, let name { return .member(zone: decoded(zone), name: decoded(name)) }
        if route == memberListing, let zone { return .memberListing(zone: decoded(zone)) }
        if route == status { return .status }
        return .other(route)
    }
}
