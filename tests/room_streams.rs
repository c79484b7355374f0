//! Streams: publish, play, stop, duplicate ids, and everything a session holds being released at
//! once on logout, disconnect and kick.

mod common;

use common::server::*;
use roomcam::protocol::{ErrorCode, ServerMessage, UpdateType};
use serde_json::json;

fn is_stream_update(t: UpdateType) -> impl Fn(&ServerMessage) -> bool {
    move |m| matches!(m, ServerMessage::StreamUpdate { update_type, .. } if *update_type == t)
}

#[tokio::test]
async fn publish_play_stop_and_players_are_told() {
    let srv = TestServer::default().await;
    let (mut a, _) = Client::login(&srv, "room1", "a", false).await;
    let (mut b, _) = Client::login(&srv, "room1", "b", false).await;
    assert!(matches!(
        a.request(json!({"type":"publish","streamId":"a1","extraInfo":"cam"}))
            .await,
        ServerMessage::PublishResult { .. }
    ));
    let m = b.recv().await;
    let ServerMessage::StreamUpdate {
        update_type: UpdateType::Add,
        streams,
        room_id,
    } = m
    else {
        panic!("{m:?}")
    };
    assert_eq!(room_id, "room1");
    assert_eq!(streams[0].stream_id, "a1");
    assert_eq!(streams[0].extra_info, "cam");
    assert_eq!(
        b.request(json!({"type":"play","streamId":"a1"})).await,
        ServerMessage::PlayResult {
            stream_id: "a1".into()
        }
    );
    // a missing stream, and a stream of another room, get StreamNotFound
    assert_eq!(
        error_code(&b.request(json!({"type":"play","streamId":"nope"})).await),
        1004001
    );
    let (mut other, _) = Client::login(&srv, "room2", "o", false).await;
    other
        .request(json!({"type":"publish","streamId":"o1"}))
        .await;
    assert_eq!(
        error_code(&b.request(json!({"type":"play","streamId":"o1"})).await),
        1004001
    );
    // stop: the publisher gets its result, the player is told its stream stopped and sees DELETE
    assert_eq!(
        a.request(json!({"type":"stopPublish","streamId":"a1"}))
            .await,
        ServerMessage::StopPublishResult {
            stream_id: "a1".into()
        }
    );
    let m = b.recv().await;
    assert_eq!(
        m,
        ServerMessage::PlayStopped {
            stream_id: "a1".into(),
            code: Some(ErrorCode::StreamNotFound)
        }
    );
    let m = b.recv().await;
    assert!(is_stream_update(UpdateType::Delete)(&m), "{m:?}");
    assert_eq!(
        error_code(
            &a.request(json!({"type":"stopPublish","streamId":"a1"}))
                .await
        ),
        1003003
    );
    assert_eq!(
        error_code(&b.request(json!({"type":"stopPlay","streamId":"a1"})).await),
        1004002
    );
    // A can publish again, and B can play it again and stop playing
    a.request(json!({"type":"publish","streamId":"a1"})).await;
    b.recv_until(is_stream_update(UpdateType::Add)).await;
    b.request(json!({"type":"play","streamId":"a1"})).await;
    assert_eq!(
        b.request(json!({"type":"stopPlay","streamId":"a1"})).await,
        ServerMessage::PlayStopped {
            stream_id: "a1".into(),
            code: None
        }
    );
    srv.stop().await;
}

#[tokio::test]
async fn second_publisher_of_a_stream_id_fails_and_first_is_unaffected() {
    let srv = TestServer::default().await;
    let (mut a, _) = Client::login(&srv, "room1", "a", false).await;
    let (mut b, _) = Client::login(&srv, "room9", "b", false).await;
    a.request(json!({"type":"publish","streamId":"shared"}))
        .await;
    // unique per app id: another room in the same app collides too
    let m = b
        .request(json!({"type":"publish","streamId":"shared"}))
        .await;
    assert_eq!(error_code(&m), 1003002);
    if let ServerMessage::Error {
        stream_id, request, ..
    } = &m
    {
        assert_eq!(stream_id.as_deref(), Some("shared"));
        assert_eq!(request.as_deref(), Some("publish"));
    }
    // the first still publishes: a newcomer to room1 sees it, and it can stop it
    let (_c, r) = Client::login(&srv, "room1", "c", false).await;
    let ServerMessage::LoginResult { streams, .. } = r else {
        unreachable!()
    };
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].user_id, "a");
    assert!(matches!(
        a.request(json!({"type":"stopPublish","streamId":"shared"}))
            .await,
        ServerMessage::StopPublishResult { .. }
    ));
    // publishing the same id twice from the same session is idempotent
    a.request(json!({"type":"publish","streamId":"x"})).await;
    assert_eq!(
        a.request(json!({"type":"publish","streamId":"x"})).await,
        ServerMessage::PublishResult {
            stream_id: "x".into()
        }
    );
    // another app has its own namespace
    let mut d = Client::connect(&srv).await;
    let t = token_for(APP2, SECRET2, "a", None, all(), 600, &[]);
    d.request(
        json!({"type":"login","version":1,"appId":APP2,"roomId":"room1","userId":"a","token":t}),
    )
    .await;
    assert!(matches!(
        d.request(json!({"type":"publish","streamId":"x"})).await,
        ServerMessage::PublishResult { .. }
    ));
    srv.stop().await;
}

#[tokio::test]
async fn second_login_of_a_user_kicks_the_first() {
    let srv = TestServer::default().await;
    let (mut first, _) = Client::login(&srv, "room1", "dup", false).await;
    first
        .request(json!({"type":"publish","streamId":"dup-cam"}))
        .await;
    let (mut watcher, _) = Client::login(&srv, "room1", "w", true).await;
    let (_second, r) = Client::login(&srv, "room1", "dup", false).await;
    let ServerMessage::LoginResult { streams, users, .. } = r else {
        unreachable!()
    };
    assert!(
        streams.is_empty(),
        "the kicked session's stream must be gone: {streams:?}"
    );
    assert_eq!(users.len(), 1);
    let m = first.recv().await;
    assert!(
        matches!(
            m,
            ServerMessage::Kicked {
                code: ErrorCode::KickedDuplicateLogin,
                ..
            }
        ),
        "{m:?}"
    );
    first.expect_closed().await;
    // the watcher saw the old session leave (stream and user) and the new one come
    watcher
        .recv_until(is_stream_update(UpdateType::Delete))
        .await;
    watcher
        .recv_until(|m| {
            matches!(
                m,
                ServerMessage::UserUpdate {
                    update_type: UpdateType::Add,
                    ..
                }
            )
        })
        .await;
    srv.stop().await;
}

#[tokio::test]
async fn logout_and_disconnect_release_everything_at_once() {
    let srv = TestServer::default().await;
    let (mut a, _) = Client::login(&srv, "room1", "a", false).await;
    a.request(json!({"type":"publish","streamId":"a1"})).await;
    a.request(json!({"type":"publish","streamId":"a2"})).await;
    let (mut b, _) = Client::login(&srv, "room1", "b", true).await;
    b.request(json!({"type":"publish","streamId":"b1"})).await;
    a.recv_until(is_stream_update(UpdateType::Add)).await;
    a.request(json!({"type":"play","streamId":"b1"})).await;
    assert_eq!(srv.metric("roomcam_streams").await, 3.0);

    // logout: one DELETE with both streams, then the user DELETE; the socket stays usable
    assert_eq!(
        error_code(
            &a.request(json!({"type":"logout","roomId":"elsewhere"}))
                .await
        ),
        1002010
    );
    assert_eq!(
        a.request(json!({"type":"logout","roomId":"room1"})).await,
        ServerMessage::LogoutResult {
            room_id: "room1".into()
        }
    );
    let m = b.recv_until(is_stream_update(UpdateType::Delete)).await;
    let ServerMessage::StreamUpdate { streams, .. } = m else {
        unreachable!()
    };
    assert_eq!(streams.len(), 2);
    let m = b.recv().await;
    assert!(
        matches!(
            m,
            ServerMessage::UserUpdate {
                update_type: UpdateType::Delete,
                ..
            }
        ),
        "{m:?}"
    );
    assert_eq!(srv.metric("roomcam_streams").await, 1.0);
    assert_eq!(
        error_code(&a.request(json!({"type":"publish","streamId":"z"})).await),
        1000006
    );

    // abrupt disconnect of b: nothing of it remains, the room is gone
    drop(b);
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    while srv.metric("roomcam_rooms").await != 0.0 {
        assert!(tokio::time::Instant::now() < deadline, "room leaked");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(srv.metric("roomcam_streams").await, 0.0);
    assert_eq!(srv.metric("roomcam_users").await, 0.0);
    srv.stop().await;
}
