
#[tokio::test]
async fn undecided_requests_expire_and_a_denial_needs_a_comment() {
    let app = TestApp::with(policy).await;
    let t = login(&app, "alice", &["dev"]).await;
    let tok = Some(t.access_token.as_str());
    let filed: AccessRequestInfo = api(&app, "POST", "/api/v1/requests", tok, &filing("prod-exec", "x", 60))
        .await
        .json();
    app.add_user("bob", &["sre-leads"]).await;
    let bob = web_sign_in(&app, "bob").await;
    let page = app.get("/requests", Some(&bob)).await;
    let form_path = format!("/requests/{}", filed.id);
    let r = app
        .post(
            &form_path,
            &[("action", "deny"), ("csrf_token", &page.csrf())],
            Some(&bob),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("comment"), "{}", r.body);
    // An hour later (the default pending_ttl) nobody decided: it is recorded as expired.
    app.advance(3600);
    let expired = crate::requests::expire(app.state.store(), app.clock.now_for_tests())
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].0, crate::notify::Kind::Expired);
    let got: AccessRequestInfo = api(&app, "GET", &format!("/api/v1/requests/{}", filed.id), tok, "")
        .await
        .json();
    assert_eq!(got.status, "expired");
    let events = app.state.store().audit_events_for("user:alice").await.unwrap();
    assert_eq!(events, ["request.filed", "request.expired"]);
    // Someone else's request is not found through the API.
    let other = login(&app, "carol", &["dev"]).await;
    let r = api(&app, "GET", &format!("/api/v1/requests/{}", filed.id), Some(&other.access_token), "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
}
