//! Request routing: the bearer-token check, then the URL decides between version, discovery,
//! OpenAPI and the resource handlers ([`ResourcePath`]).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request, Response, StatusCode};

use super::body::{self, Body};
use super::query::Query;
use super::resource::Format;
use super::status::ApiError;
use super::{Context, discovery, node, openapi, resource};
use crate::object::Kind;

/// Where a resource URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePath {
    pub kind: Kind,
    /// The namespace in the URL; `None` for cluster-scoped kinds and all-namespace lists.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// What a URL asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Route {
    Health,
    Version,
    /// `/api`, `/apis`, `/api/v1`, `/apis/apps`, `/apis/apps/v1`.
    Discovery(String),
    /// `/openapi/v2`, `/openapi/v3` and `/openapi/v3/<group-version path>`.
    OpenApi(String),
    Resource(ResourcePath),
    /// `/api/v1/nodes` and `/api/v1/nodes/NAME` (read-only, not in the store).
    Node(Option<String>),
}

/// Answers one request.
pub async fn handle(context: Arc<Context>, request: Request<Incoming>) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = parse(&path);
    let response = if !matches!(route, Some(Route::Health)) && !authorized(&context, &request) {
        ApiError::unauthorized().response()
    } else {
        match route {
            Some(route) => match dispatch(context, route, request).await {
                Ok(response) => response,
                Err(err) => err.response(),
            },
            None => ApiError::no_route(&path).response(),
        }
    };
    tracing::debug!(%method, %path, status = response.status().as_u16(), "API request");
    response
}

fn authorized(context: &Context, request: &Request<Incoming>) -> bool {
    let Some(value) = request.headers().get(AUTHORIZATION) else {
        return false;
    };
    let Some(token) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (token.trim().as_bytes(), context.token.as_bytes());
    // Compare without an early exit so the time taken says nothing about the token.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn dispatch(
    context: Arc<Context>,
    route: Route,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let get_only = |method: &Method, what: &str| {
        if method == Method::GET || method == Method::HEAD {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed(method.as_str(), what))
        }
    };
    match route {
        Route::Health => Ok(body::with_type(
            StatusCode::OK,
            "text/plain",
            Body::full("ok"),
        )),
        Route::Version => {
            get_only(request.method(), "version")?;
            Ok(discovery::version())
        }
        Route::Discovery(path) => {
            get_only(request.method(), &path)?;
            discovery::answer(&context, &path, request.headers())
        }
        Route::OpenApi(path) => {
            get_only(request.method(), &path)?;
            openapi::answer(&path)
        }
        Route::Resource(target) => resource::handle(context, target, request).await,
        Route::Node(name) => node::answer(
            &context,
            request.method(),
            name.as_deref(),
            &Query::parse(request.uri().query()),
            Format::from_headers(request.headers()),
        ),
    }
}

fn parse(path: &str) -> Option<Route> {
    let trimmed = path.trim_end_matches('/');
    match trimmed {
        "/healthz" | "/livez" | "/readyz" => return Some(Route::Health),
        "/version" => return Some(Route::Version),
        "/api" | "/apis" | "/api/v1" => return Some(Route::Discovery(trimmed.to_owned())),
        _ => {}
    }
    if trimmed.starts_with("/openapi/") {
        return Some(Route::OpenApi(trimmed.to_owned()));
    }
    let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
    let (group, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group] => {
            return is_group(group).then(|| Route::Discovery(trimmed.to_owned()));
        }
        ["apis", group, "v1"] => {
            return is_group(group).then(|| Route::Discovery(trimmed.to_owned()));
        }
        ["apis", group, "v1", rest @ ..] => (*group, rest),
        _ => return None,
    };
    let kind_of = |plural: &str| {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.plural() == plural && k.group() == group)
    };
    match rest {
        ["nodes"] if group.is_empty() => return Some(Route::Node(None)),
        ["nodes", name] if group.is_empty() => return Some(Route::Node(Some((*name).to_owned()))),
        _ => {}
    }
    let owned = |s: &&str| Some((*s).to_owned());
    let target = match rest {
        ["namespaces", namespace, plural, more @ ..]
            if !matches!(*plural, "status" | "finalize") && more.len() <= 2 =>
        {
            let kind = kind_of(plural).filter(|k| k.namespaced())?;
            ResourcePath {
                kind,
                namespace: Some((*namespace).to_owned()),
                name: more.first().and_then(owned),
                subresource: more.get(1).and_then(owned),
            }
        }
        [plural, more @ ..] if more.len() <= 2 => {
            let kind = kind_of(plural)?;
            if kind.namespaced() && !more.is_empty() {
                return None;
            }
            ResourcePath {
                kind,
                namespace: None,
                name: more.first().and_then(owned),
                subresource: more.get(1).and_then(owned),
            }
        }
        _ => return None,
    };
    if target.name.as_deref() == Some("") {
        return None;
    }
    Some(Route::Resource(target))
}

fn is_group(group: &str) -> bool {
    Kind::ALL
        .iter()
        .any(|k| k.group() == group && !group.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(path: &str) -> ResourcePath {
        match parse(path) {
            Some(Route::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn parses_resource_urls() {
        let r = resource("/api/v1/namespaces/default/pods/web/log");
        assert_eq!(r.kind, Kind::Pod);
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource.as_deref(), Some("log"));

        let r = resource("/apis/apps/v1/namespaces/shop/deployments");
        assert_eq!((r.kind, r.name), (Kind::Deployment, None));

        let r = resource("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-x2b4c");
        assert_eq!(r.kind, Kind::EndpointSlice);
        assert_eq!(r.name.as_deref(), Some("web-x2b4c"));
        assert_eq!(
            parse("/apis/discovery.k8s.io/v1"),
            Some(Route::Discovery("/apis/discovery.k8s.io/v1".into()))
        );

        let r = resource("/api/v1/pods");
        assert_eq!((r.kind, r.namespace), (Kind::Pod, None));

        let r = resource("/api/v1/namespaces/shop");
        assert_eq!(r.kind, Kind::Namespace);
        assert_eq!(r.name.as_deref(), Some("shop"));

        let r = resource("/api/v1/namespaces/shop/status");
        assert_eq!(r.kind, Kind::Namespace);
        assert_eq!(r.subresource.as_deref(), Some("status"));

        assert_eq!(parse("/apis/apps/v1/pods"), None);
        assert_eq!(parse("/api/v1/deployments"), None);
        assert_eq!(parse("/api/v1/pods/web"), None);
        assert_eq!(parse("/apis/batch/v1"), None);
        assert_eq!(
            parse("/apis/apps/v1"),
            Some(Route::Discovery("/apis/apps/v1".into()))
        );
        assert_eq!(parse("/api/"), Some(Route::Discovery("/api".into())));
        assert_eq!(parse("/version"), Some(Route::Version));
        assert_eq!(parse("/api/v1/nodes"), Some(Route::Node(None)));
        assert_eq!(
            parse("/api/v1/nodes/harness"),
            Some(Route::Node(Some("harness".into())))
        );
    }
}
