//! The pages a person types into answer mistakes with the documented statuses (400 for an
//! unknown code, 401 for a wrong password, with the form shown again), and recover.

use e2e::browser::{csrf_token, path_of};

use crate::world::{world, Laptop, LOGIN_TIMEOUT, READERS};

#[test]
fn a_wrong_code_and_a_wrong_password_get_error_pages_then_the_login_still_works() {
    let world = world();
    let leo = world.new_person("leo", &[READERS]);
    let laptop = Laptop::new();
    let browser = world.browser();

    // Real codes are random; this one was never issued.
    let wrong = browser.enter_user_code("BCDF-GHJK");
    assert_eq!(
        wrong.status, 400,
        "an unknown user code must be refused: {wrong:?}"
    );

    let login = laptop.env.start_login(&laptop.plugin);
    let login_page = browser.enter_user_code(login.user_code());
    assert_eq!(path_of(&login_page), "/login", "{login_page:?}");

    let bad = browser.sign_in(&login_page, &leo.name, "not the password");
    assert_eq!(bad.status, 401, "a wrong password must be refused: {bad:?}");
    assert!(
        bad.body.contains(r#"name="password""#),
        "the login form is not shown again:\n{}",
        bad.body
    );
    let _ = csrf_token(&bad);
    assert!(
        !bad.body.contains("not the password"),
        "the wrong password is echoed back"
    );

    // The 401 page (served at /login) carries the form again; sign in properly from it.
    let consent = browser.sign_in(&bad, &leo.name, &leo.password);
    assert_eq!(path_of(&consent), "/consent", "{consent:?}");
    let _ = browser.answer(&consent, e2e::browser::Answer::Approve);
    login.finish(LOGIN_TIMEOUT).assert_success();
    laptop.kubectl(&["get", "namespaces"]).assert_success();
}
